"""Venice API conformance (issue 23, "How to keep it true"): every operation of Venice's OpenAPI document
that Tollway serves, asked with requests built from the document's examples, defaults and enums, on a
real server with the shipped catalog's embedded models; every answer (status, content type, body)
checked against the document's schema by jsonschema_rs (tests/contract/venice_run.py).

The lists below are what does not conform yet, each with why. They are strict: an operation on XFAIL
whose answers all conform fails the test until it is taken off the list, so the lists only shrink.
The figures (docs/venice-conformance.json, quoted in the README) must be the measured ones:
`python tools/venice_conformance.py --write` refreshes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.contract.venice_run import Answer, figures, spec_version
from tests.contract.venice_server import FIGURES_PATH, conformance_run
from tests.contract.venice_spec import operations

pytestmark = pytest.mark.slow

# Operations of the document Tollway does not serve yet (issue 23, "Operations not yet served").
NOT_SERVED: dict[str, str] = {}

# Served operations with an answer that does not match the document yet, and why.
XFAIL = {
    "POST /api_keys/generate_web3_key": "the document lists no status but 200, and its examples' signatures are "
    "not signatures of a token this server issued: each is refused (403), a status the document has no entry for",
    "POST /embeddings": "encoding_format=base64 answers a base64 string (as OpenAI's SDKs expect); the document "
    "types every embedding as an array of numbers",
    "POST /audio/voices": "no engine here clones voices: every request is a 400 saying so (the issue's \"a clear "
    "4xx\"), a refusal of the document's example",
    "POST /video/transcriptions": "Tollway does not fetch videos from YouTube: every request is a 400 saying so "
    "(and pointing at audio/transcriptions), a refusal of the document's example",
    "POST /augment/scrape": "only public pages may be scraped and the run may be offline: its example is sent "
    "to TEST-NET-1 (192.0.2.1, never public), and refused the same way on any machine",
    "POST /responses": "`error: null` on success, as OpenAI's Responses object has it; the document types `error` as "
    "an object, not nullable",
}


@pytest.fixture(scope="module")
def conformance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[set[str], list[Answer]]]:
    yield conformance_run(tmp_path_factory.mktemp("venice-conformance"))


def test_the_served_operations_are_the_documents_minus_the_not_served_list(
    conformance: tuple[set[str], list[Answer]],
) -> None:
    served, _ = conformance
    documented = {op.name for op in operations()}
    assert NOT_SERVED.keys() <= documented, "NOT_SERVED names an operation the document does not have"
    assert served == documented - NOT_SERVED.keys()


@pytest.mark.parametrize("name", sorted({op.name for op in operations()} - NOT_SERVED.keys()))
def test_every_answer_of_a_served_operation_matches_the_document(
    conformance: tuple[set[str], list[Answer]], name: str
) -> None:
    answers = [a for a in conformance[1] if a.operation == name]
    assert answers, f"no request was sent for {name}"
    wrong = [f"[{a.label} → {a.status}] {'; '.join(a.failures)}" for a in answers if not a.ok]
    if name in XFAIL:
        assert wrong, f"{name} now conforms: take it off XFAIL ({XFAIL[name]})"
        pytest.xfail(f"{XFAIL[name]}: {wrong[0][:200]}")
    assert not wrong, "\n".join(wrong)


def test_no_answer_is_a_5xx_or_a_dropped_connection(conformance: tuple[set[str], list[Answer]]) -> None:
    failed = [
        f"{a.operation} [{a.label}] → {a.status}" for a in conformance[1] if a.status == 0 or a.status >= 500
    ]
    assert not failed


def test_the_published_figures_are_the_measured_ones(conformance: tuple[set[str], list[Answer]]) -> None:
    measured = {"spec_version": spec_version(), **figures(*conformance)}
    published = json.loads(Path(FIGURES_PATH).read_text())
    assert published == measured, "run `python tools/venice_conformance.py --write` and update the README"
