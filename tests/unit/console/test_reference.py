"""/llms.txt and /llms-full.txt are rendered from an OpenAPI document and the README (console/reference.py)."""

from __future__ import annotations

import json

from tollway.console.reference import anchor, build

SPEC = {
    "info": {"title": "Tollway", "version": "9.9", "description": "The API."},
    "paths": {
        "/v1/things/{thing_id}": {
            "get": {
                "summary": "One thing",
                "tags": ["things"],
                "parameters": [
                    {"name": "thing_id", "in": "path", "required": True, "schema": {"type": "string"}},
                    {"name": "full", "in": "query", "schema": {"type": "boolean"}, "description": "More."},
                ],
                "responses": {"200": {"description": "Success"}, "404": {"description": "No such thing"}},
            }
        },
        "/v1/things": {
            "post": {
                "summary": "Make a thing",
                "tags": ["things"],
                "requestBody": {
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/New"}}}
                },
                "responses": {"201": {"description": "Made"}, "400": {"description": "Bad"}},
            }
        },
    },
    "components": {
        "schemas": {
            "New": {
                "type": "object",
                "required": ["model", "size"],
                "properties": {
                    "model": {"type": "string", "description": "Which."},
                    "size": {"type": "integer", "default": 3},
                    "colour": {"enum": ["red", "blue"]},
                },
            }
        }
    },
}
README = "# Tollway\n\nA gateway that meters.\n\n## Money\n\nExact.\n\n## Limits\n\nSome.\n"


def test_the_index_has_title_summary_and_sections_of_links() -> None:
    index = build(SPEC, README)["llms.txt"]
    assert index.startswith("# Tollway\n\n> A gateway that meters.\n")
    assert "## Things\n" in index
    assert (
        f"- [GET /v1/things/{{thing_id}}](/llms-full.txt#{anchor('get', '/v1/things/{thing_id}')}): One thing"
        in index
    )
    assert "## Optional" in index and "[Money](/llms-full.txt#guide-money)" in index


def test_the_full_reference_has_parameters_body_errors_an_example_and_the_guide() -> None:
    full = build(SPEC, README)["llms-full.txt"]
    assert "### GET /v1/things/{thing_id}\n" in full and "### POST /v1/things\n" in full
    assert (
        "- `thing_id` (in path, string, required)" in full
        and "- `full` (in query, boolean, optional) More." in full
    )
    assert "- `model` (string, required) Which." in full and '- `colour` ("red" | "blue", optional)' in full
    assert "Errors: 404 No such thing" in full and "Errors: 400 Bad" in full
    example = json.dumps({"model": "default", "size": 3})
    assert 'curl -X POST http://127.0.0.1:8000/v1/things -H "Authorization: Bearer $TOLLWAY_KEY" ' in full
    assert f"-d '{example}'" in full
    assert '<a id="guide-money"></a>\n### Money' in full and full.rstrip().endswith("Some.")
