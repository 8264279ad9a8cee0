"""The Responses API on the one charge path: native pass-through (native.py) and response storage (stored.py)."""
