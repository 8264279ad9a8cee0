"""`tollway …` commands run in this test process: the same entry point (`tollway.cli.main`), its exit
code, stdout and stderr, with the command's own environment and working directory. A command in a new
interpreter pays about a second of imports, more than the command itself; tests/contract/test_cli.py
keeps running the installed `tollway` in its own process, so the entry point itself stays covered."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Cli = Callable[..., subprocess.CompletedProcess[str]]


def in_process(cwd: Path, env: dict[str, str]) -> Cli:
    """A runner of `tollway *args` in `cwd` with exactly `env`, as `subprocess.run` would report it."""
    from tollway.cli import main

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        out, err = io.StringIO(), io.StringIO()
        code: int | str | None = 0
        argv = ["tollway", *args]
        with (
            pytest.MonkeyPatch.context() as patch,
            contextlib.redirect_stdout(out),
            contextlib.redirect_stderr(err),
        ):
            for name in set(os.environ) - set(env):
                patch.delenv(name)
            for name, value in env.items():
                patch.setenv(name, value)
            patch.chdir(cwd)
            patch.setattr(sys, "argv", argv)
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code
        if not isinstance(code, int):  # sys.exit("message") prints it and exits 1; None is 0
            err.write(f"{code}\n" if code is not None else "")
            code = 0 if code is None else 1
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())

    return run
