"""`tollway deposits scan` (one pass of the USDC deposit watcher, with its progress) and `tollway deposits
address ACCOUNT` (an account's deposit address, allocated on first use): core/funding/deposits.py. Both
need the rail configured (TOLLWAY_DEPOSIT_XPUB and the rest); every command takes --json."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tollway.cli.common import JsonFlag, app, emit, run
from tollway.core.funding.deposits import Deposits, Scan
from tollway.errors import ErrorCode, TollwayError
from tollway.runtime.services import Services

deposits_app = typer.Typer(help="USDC deposits to per-account addresses.", no_args_is_help=True)
app.add_typer(deposits_app, name="deposits")
OFF = (
    "USDC deposits are not enabled: set TOLLWAY_DEPOSIT_XPUB, TOLLWAY_USDC_CONTRACT, TOLLWAY_CHAIN_RPC_URL, "
    "TOLLWAY_DEPOSIT_CONFIRMATIONS and TOLLWAY_DEPOSIT_MIN_USD."
)


def _deposits(services: Services) -> Deposits:
    if services.deposits is None:
        raise TollwayError(ErrorCode.VALIDATION, OFF)
    return services.deposits


@deposits_app.command("scan")
def scan(as_json: JsonFlag = False) -> None:
    """One pass of the watcher: from its cursor to the newest block with enough confirmations."""

    def progress(done: Scan) -> None:
        if not as_json:
            typer.echo(f"scanned blocks {done.first}-{done.last} of {done.head}: {_counts(done)}", err=True)

    async def work(services: Services) -> dict[str, Any]:
        deposits = _deposits(services)
        try:
            done = await deposits.watcher.scan_once(progress)
            await deposits.watcher.release()
        finally:
            await deposits.aclose()
        return {
            "held_lease": done.held,
            "first_block": done.first,
            "last_block": done.last,
            "head": done.head,
            "outcomes": done.outcomes,
        }

    result = run(work, as_json)
    if not result["held_lease"]:
        text = "another watcher holds the lease (a server's); nothing scanned"
    elif result["last_block"] < 0:
        text = f"nothing new to scan (head {result['head']})"
    else:
        text = (
            f"scanned to block {result['last_block']} (head {result['head']}): {_counts(result['outcomes'])}"
        )
    emit(result, as_json, text)


@deposits_app.command("address")
def address(
    account_id: Annotated[str, typer.Argument(help="The account (acct_…).")], as_json: JsonFlag = False
) -> None:
    """The account's deposit address (allocated and stored on first use; always the same after)."""

    async def work(services: Services) -> dict[str, Any]:
        deposits = _deposits(services)
        try:
            found = await deposits.addresses.address_of(account_id)
        finally:
            await deposits.aclose()
        return {"account_id": found.account_id, "index": found.index, "address": found.address}

    found = run(work, as_json)
    emit(found, as_json, f"{found['account_id']}  {found['address']}  (index {found['index']})")


def _counts(outcomes: Scan | dict[str, int]) -> str:
    counts = outcomes.outcomes if isinstance(outcomes, Scan) else outcomes
    return ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items())) or "no deposits"
