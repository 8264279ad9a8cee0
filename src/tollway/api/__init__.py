"""HTTP adapters, thin: parse, call the core, render."""
