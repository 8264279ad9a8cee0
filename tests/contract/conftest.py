"""Contract-test fixtures: a real `tollway serve` on a random 127.0.0.1 port, a fake upstream, SDK clients.

Servers run as subprocesses on real sockets: in-process transports buffer streams and would hide
relay bugs. The fake upstream stands for the providers we cannot reach from here. The servers, their
catalogs and the helpers tests drive them with are in servers.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.contract.servers import (
    PROTOCOL_ENV,
    Protocols,
    Tollway,
    postgres_database,
    protocols_yaml,
    start_tollway,
)
from tests.support.processes import ServerProcess, free_port, start_fake


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[ServerProcess]:
    with start_fake("tests.fakes.openai_upstream") as process:
        yield process


@pytest.fixture(scope="module")
def own_fake() -> Iterator[ServerProcess]:
    """An upstream for one module alone: its scripted delays must not leak into other tests."""
    with start_fake("tests.fakes.openai_upstream") as process:
        yield process


@pytest.fixture(scope="session")
def tollway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    tmp = tmp_path_factory.mktemp("tollway-sqlite")
    database_url = f"sqlite:///{tmp}/tollway.db"
    process = start_tollway(tmp, fake_upstream.base_url, database_url)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


@pytest.fixture(scope="session")
def tollway_pg(tmp_path_factory: pytest.TempPathFactory, fake_upstream: ServerProcess) -> Iterator[Tollway]:
    database_url = postgres_database()
    process = start_tollway(tmp_path_factory.mktemp("tollway-pg"), fake_upstream.base_url, database_url)
    yield Tollway(process, database_url, fake_upstream.base_url)
    process.stop()


@pytest.fixture
def fresh_fake(tollway: Tollway) -> Iterator[Tollway]:
    tollway.fake("POST", "reset")
    yield tollway
    tollway.fake("POST", "reset")


@pytest.fixture
def funded(tollway: Tollway) -> Callable[..., tuple[str, str]]:
    """Make an account with `credit` USD and an inference key on it: (account_id, key)."""
    return tollway.funded


# -- Anthropic and Gemini upstreams, and a server routing to them (tests/contract/test_protocols*.py) --


def _fake_process(module: str) -> Iterator[ServerProcess]:
    with start_fake(module) as process:
        yield process


@pytest.fixture(scope="session")
def anthropic_upstream() -> Iterator[ServerProcess]:
    yield from _fake_process("tests.fakes.anthropic_upstream")


@pytest.fixture(scope="session")
def gemini_upstream() -> Iterator[ServerProcess]:
    yield from _fake_process("tests.fakes.gemini_upstream")


@pytest.fixture(scope="session")
def protocols(
    tmp_path_factory: pytest.TempPathFactory,
    fake_upstream: ServerProcess,
    anthropic_upstream: ServerProcess,
    gemini_upstream: ServerProcess,
) -> Iterator[Protocols]:
    tmp = tmp_path_factory.mktemp("tollway-protocols")
    database_url = f"sqlite:///{tmp}/tollway.db"
    urls = {
        "openai": fake_upstream.base_url,
        "anthropic": anthropic_upstream.base_url,
        "gemini": gemini_upstream.base_url,
    }
    catalog = tmp / "protocols.yaml"
    catalog.write_text(protocols_yaml(urls, free_port()))
    process = start_tollway(
        tmp, fake_upstream.base_url, database_url, {**PROTOCOL_ENV, "TOLLWAY_CONFIG": str(catalog)}
    )
    yield Protocols(process, database_url, fake_upstream.base_url, urls)
    process.stop()


@pytest.fixture
def fresh_protocols(protocols: Protocols) -> Iterator[Protocols]:
    for upstream in protocols.upstreams:
        protocols.control(upstream, "POST", "reset")
    yield protocols
    for upstream in protocols.upstreams:
        protocols.control(upstream, "POST", "reset")
