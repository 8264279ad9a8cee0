"""`tollway mcp` (the MCP server on stdio, for desktop clients) and `tollway docs export DIR` (the
LLM-ready reference and openapi.json, for static hosting)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from tollway.cli.common import app

docs_app = typer.Typer(help="The API reference as files.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@app.command()
def mcp(
    base_url: Annotated[
        str | None, typer.Option(help="Tollway's URL (default TOLLWAY_BASE_URL, else http://127.0.0.1:8000).")
    ] = None,
) -> None:
    """Serve the MCP tools on stdio (Claude Desktop, Cursor...). Each tool calls Tollway's REST API
    with TOLLWAY_API_KEY, and is charged as that route is."""
    from tollway.mcp_server.server import stdio_server

    try:
        server = stdio_server(base_url)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    server.run("stdio")


@docs_app.command("export")
def export(directory: Annotated[Path, typer.Argument(help="The folder to write into (created).")]) -> None:
    """Write llms.txt, llms-full.txt and openapi.json, exactly as this version serves them."""
    from tollway.console import reference
    from tollway.runtime.app import create_app

    spec = create_app().openapi()
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in reference.build(spec).items():
        (directory / name).write_text(text, encoding="utf-8")
    (directory / "openapi.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    typer.echo(f"wrote llms.txt, llms-full.txt and openapi.json to {directory}")
