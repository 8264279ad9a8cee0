"""The deployment files cannot run here (no Docker engine): parse them, and keep them in step with the
CLI and Settings (every TOLLWAY_* variable they set exists; every command they run exists)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from typer.testing import CliRunner

from tollway.cli import app
from tollway.settings import Settings

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "deploy.md"
INSTRUCTIONS = {
    "FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
    "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL",
}  # fmt: skip


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0], line) for line in lines if line and not line.startswith("#")]


def test_dockerfile_is_multi_stage_non_root_and_valid() -> None:
    instructions = _dockerfile_instructions()
    assert all(name in INSTRUCTIONS for name, _ in instructions), instructions
    froms = [line for name, line in instructions if name == "FROM"]
    assert len(froms) >= 2 and " AS " in froms[0]
    users = [line.split()[1] for name, line in instructions if name == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    assert any("--from=build" in line for name, line in instructions if name == "COPY")
    entry = next(line for name, line in instructions if name == "ENTRYPOINT")
    assert '"tollway"' in entry


def _yaml_docs() -> list[tuple[Path, dict[str, object]]]:
    paths = [DEPLOY / "compose.yaml", *sorted((DEPLOY / "k8s").glob("*.yaml"))]
    docs = []
    for path in paths:
        for doc in yaml.safe_load_all(path.read_text()):
            assert isinstance(doc, dict), path
            docs.append((path, doc))
    return docs


def test_yaml_files_parse_and_have_the_expected_shape() -> None:
    docs = _yaml_docs()
    compose = next(doc for path, doc in docs if path.name == "compose.yaml")
    services = compose["services"]
    assert isinstance(services, dict)
    assert {"tollway-1", "tollway-2", "postgres", "redis", "lb"} <= set(services)
    kinds = {doc.get("kind") for path, doc in docs if path.parent.name == "k8s"}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= kinds
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert nginx.count("{") == nginx.count("}") and "proxy_buffering off" in nginx


def _all_text() -> str:
    files = [DEPLOY / "Dockerfile", DEPLOY / "compose.yaml", DEPLOY / "nginx.conf", DOCS]
    files += sorted((DEPLOY / "k8s").glob("*"))
    return "\n".join(path.read_text() for path in files)


def test_every_tollway_variable_they_use_is_a_setting() -> None:
    known = {f"TOLLWAY_{name.upper()}" for name in Settings.model_fields}
    used = set(re.findall(r"TOLLWAY_[A-Z0-9_]+", _all_text()))
    assert used, "no variables found"
    assert used <= known, sorted(used - known)


def test_every_command_they_run_exists_in_the_cli() -> None:
    text = _all_text()
    commands = set(re.findall(r'(?:tollway|"args": |args: )\[?"?(serve|migrate|init|models)\b', text))
    commands |= set(re.findall(r"\btollway (\w+)", text)) & {
        "serve",
        "migrate",
        "init",
        "models",
        "accounts",
        "keys",
    }
    assert {"serve", "migrate"} <= commands
    runner = CliRunner()
    for command in commands:
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, (command, result.output)
    assert "--down" in runner.invoke(app, ["migrate", "--help"]).output
