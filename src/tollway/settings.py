"""Process configuration: TOLLWAY_* environment variables (DESIGN §9)."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CATALOG = REPO_ROOT / "catalog" / "default.yaml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOLLWAY_", extra="ignore")

    database_url: str = "sqlite:///./tollway.db"
    redis_url: str | None = None
    data_dir: Path = Path("./tollway-data")
    config: Path | None = Field(default=None, description="catalog YAML; unset = the embedded catalog")
    key_prefix: str = "tw_"
    operator_key: str | None = None
    # Pepper for key hashes. Replicas must share it: set it in production, or they share data_dir.
    secret: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 25 * 1024 * 1024
    key_cache_seconds: float = 5.0
    reservation_ttl_seconds: int = 900
    stream_drain_seconds: float = 120.0
    upstream_timeout_seconds: float = 600.0
    log_level: str = "info"

    @property
    def catalog_path(self) -> Path:
        return self.config or DEFAULT_CATALOG

    @property
    def async_database_url(self) -> str:
        """The SQLAlchemy URL with the async driver Tollway uses for each database."""
        url = self.database_url
        for plain, driver in (
            ("sqlite://", "sqlite+aiosqlite://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("postgres://", "postgresql+asyncpg://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.async_database_url.startswith("sqlite")

    def pepper(self) -> bytes:
        """The HMAC pepper for key hashes: TOLLWAY_SECRET, else a file created once in data_dir."""
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            try:
                with path.open("x") as fh:  # "x": two processes racing must not both write
                    fh.write(secrets.token_urlsafe(32))
                path.chmod(0o600)
            except FileExistsError:
                pass
        return path.read_text().strip().encode()
