"""Operations: metrics, structured logs, the serving lifecycle, maintenance and catalog reload (DESIGN §7)."""
