"""The OpenAPI gate: schemathesis over /openapi.json against a real `tollway serve` (issue 19 item 14).

Every documented operation gets generated requests (the examples, coverage and fuzzing phases; positive
and negative data) with the gate account's admin-scope key, or the operator key on the operator routes,
and each answer must pass not_a_server_error, status_code_conformance, content_type_conformance and
response_schema_conformance. Part of the generated requests carry real values (catalog models, ids of
this account's jobs, media and keys, a valid image), so the routes are exercised past validation. The
server's catalog (openapi_gate.yaml) sends chat and embeddings to the fake OpenAI upstream, video and
music jobs to the fake queue upstream, and images to the procedural engines. README "The OpenAPI gate"
says what it covers.
"""

from __future__ import annotations

import json
import os
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest

from tests.contract.servers import HERE, OPERATOR_KEY, REPO, Tollway, start_tollway
from tests.support.processes import ServerProcess, start_fake

pytestmark = pytest.mark.slow
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
SEED = 19014
MAX_EXAMPLES = 8  # fuzzing cases per operation; the examples and coverage phases add theirs
# Only a guard against a hang: the run takes about a minute on 2 idle cores, two on a loaded machine.
# (--max-time would not do: it makes fuzzing repeat until the time is spent.)
RUN_SECONDS = 1200


@dataclass
class Gate:
    """The gate's server, its funded account's admin key, and ids generated requests may name."""

    process: ServerProcess
    key: str
    key_id: str
    account_id: str
    ids: dict[str, list[str]] = field(default_factory=dict)
    media_query: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.process.base_url

    def call(self, method: str, path: str, **kw: Any) -> httpx2.Response:
        headers = {"authorization": f"Bearer {self.key}"}
        return httpx2.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kw)


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Gate]:
    tmp = tmp_path_factory.mktemp("tollway-openapi")
    with start_fake("tests.fakes.queue_upstream") as queue:
        catalog = tmp / "openapi_gate.yaml"
        template = string.Template((HERE / "openapi_gate.yaml").read_text())
        catalog.write_text(template.substitute(fake=fake_upstream.base_url, queue=queue.base_url))
        env = {
            "TOLLWAY_CONFIG": str(catalog),
            # The gate sends thousands of failing requests with one key: every one must reach its route.
            "TOLLWAY_FAILED_REQUEST_LIMIT": "false",
            "TOLLWAY_JOBS_POLL_INTERVAL_SECONDS": "0.3",
        }
        process = start_tollway(tmp, fake_upstream.base_url, f"sqlite:///{tmp}/tollway.db", env)
        try:
            yield _prepared(process)
        finally:
            process.stop()


def _prepared(process: ServerProcess) -> Gate:
    """A funded account with an admin key, and one of each thing a generated request may look up."""
    operator = {"authorization": f"Bearer {OPERATOR_KEY}"}
    url = process.base_url
    account = httpx2.post(
        f"{url}/v1/admin/accounts", json={"name": "openapi", "credit_usd": "50"}, headers=operator
    ).json()
    # Admin scope, so the key routes answer; rate limits no generated request reaches.
    limits = {"rpm": 1_000_000, "rpd": 100_000_000, "tpm": 1_000_000_000}
    minted = httpx2.post(
        f"{url}/v1/admin/accounts/{account['id']}/keys",
        json={"scope": "admin", "rate_limits": limits},
        headers=operator,
    )
    gate = Gate(process, minted.json()["key"], minted.json()["id"], account["id"])
    # What operator routes that edit, suspend or debit an account act on: never the gate's own account.
    target = httpx2.post(
        f"{url}/v1/admin/accounts", json={"name": "openapi-target", "credit_usd": "5"}, headers=operator
    ).json()
    spare = gate.call("POST", "/v1/keys", json={"label": "spare"}).json()  # the key a DELETE may revoke
    video = gate.call("POST", "/v1/video/queue", json={"model": "up-video", "prompt": "a cat", "duration": 2})
    task = gate.call("POST", "/v1/images/generate", json={"prompt": "a cat", "model": "local-procedural"})
    link = gate.call("POST", "/v1/images/generations", json={"prompt": "a cat", "response_format": "url"})
    queue_id = video.json()["queue_id"]
    deadline = time.monotonic() + 60
    while (
        gate.call("POST", "/v1/video/retrieve", json={"queue_id": queue_id}).json()["status"] != "COMPLETED"
    ):
        assert time.monotonic() < deadline, "the gate's video job did not complete"
        time.sleep(0.3)
    media_id, _, query = link.json()["data"][0]["url"].split("/v1/media/", 1)[1].partition("?")
    gate.media_query = dict(pair.split("=", 1) for pair in query.split("&"))
    gate.ids = {
        "account_id": [target["id"]],
        "key_id": [spare["id"]],
        "job_id": [queue_id],
        "queue_id": [queue_id],
        "task_id": [task.json()["data"]["task_id"]],
        "media_id": [media_id],
        "model_id": ["fake-chat", "local-procedural"],
        "slug": ["helper"],
        "target": ["fake-chat:generateContent", "fake-chat:streamGenerateContent"],
    }
    return gate


def test_openapi_gate(gate: Gate, tmp_path: Any) -> None:
    """schemathesis over /openapi.json, the four checks, zero failures (README "The OpenAPI gate")."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "run",
        f"{gate.url}/openapi.json",
        f"--checks={CHECKS}",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={SEED}",
        "--workers=1",
        "--generation-database=none",
        "--phases=examples,coverage,fuzzing,stateful",
        "--request-timeout=120",
        "--output-sanitize=false",  # the reproducers show the request whole (the keys are this run's)
    ]
    shared = {
        "key": gate.key,
        "key_id": gate.key_id,
        "account_id": gate.account_id,
        "operator_key": OPERATOR_KEY,
        "ids": gate.ids,
        "media_query": gate.media_query,
        "seed": SEED,
    }
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.contract.openapi_hooks",
        "TOLLWAY_GATE": json.dumps(shared),
    }
    run = subprocess.run(
        command,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": f"{REPO}:{env.get('PYTHONPATH', '')}"},
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
    )
    if run.returncode != 0:  # the report names each failure with a curl line that reproduces it
        pytest.fail(
            f"schemathesis found failures (exit {run.returncode}):\n{run.stdout[-40000:]}{run.stderr[-4000:]}"
        )
    assert "passed" in run.stdout and "Coverage" in run.stdout, run.stdout[-4000:]


# POSTs that take no body: a reload, cancelling a response (OpenAI's route has none either), suspending
# and resuming an account
BODILESS_POSTS = (
    "/v1/admin/reload",
    "/v1/responses/{response_id}/cancel",  # and the batches' cancel
    "/v1/admin/accounts/{account_id}/suspend",
    "/v1/admin/accounts/{account_id}/resume",
)


def test_every_route_documents_its_body_and_errors(tollway: Tollway) -> None:
    """Each operation declares its 4xx in its envelope, and each POST its request body."""
    document = httpx2.get(f"{tollway.url}/openapi.json").json()
    for path, operations in document["paths"].items():
        if path in ("/health", "/ready", "/metrics"):
            continue
        for method, operation in operations.items():
            label = f"{method.upper()} {path}"
            answers = operation["responses"]
            assert any(status.startswith("4") for status in answers), label
            assert {"413", "429", "500"} <= set(answers), label
            if method == "post" and path not in BODILESS_POSTS and not path.endswith("/cancel"):
                assert operation["requestBody"]["content"], label
            for status, answer in answers.items():
                if status.startswith(("4", "5")):
                    [schema] = [content["schema"] for content in answer["content"].values()]
                    assert schema["$ref"].endswith("Error"), (label, status)
