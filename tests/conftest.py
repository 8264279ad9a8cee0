"""Suite-wide set-up.

The suite starts a few hundred Python subprocesses (`tollway serve`, the CLI, the fake upstreams). With
PYTHONDONTWRITEBYTECODE set in the environment each of them compiled Tollway's ~250 modules from source
again: ~0.25 s of CPU per start on the 2-core CI machine. The children may write bytecode
(`__pycache__/` is in .gitignore); the variable is dropped for them only, never for the caller's shell.
"""

from __future__ import annotations

import os

os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
