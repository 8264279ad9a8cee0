"""Rewrite code written against the module paths before issue 18 (the floors) to the new ones.

`python tools/issue18_paths.py FILE...` rewrites imports (`from tollway.core.ledger import Ledger`,
`from tollway.core import keys`, names that moved to another module such as `Caller`), dotted names in
strings (monkeypatch targets) and `core/x.py` paths in docstrings. Run it once per file, on files that
still use the old paths (a test merged from a branch older than the move): a second run would map a
new name whose prefix is an old one again. Calls whose signature changed are not rewritten: the job
quotes take no Catalog (`prices.video_quote(model, ask)`), `unit_price(model, field)` takes no Pipeline,
`Jobs(settings, engine, pipeline, media_store)` and `jobs_from(services)` is in runtime/services.py.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MODULES: dict[str, str] = {
    "tollway.api.admin": "tollway.api.accounts.admin",
    "tollway.api.audio": "tollway.api.media.audio",
    "tollway.api.billing": "tollway.api.accounts.billing",
    "tollway.api.characters": "tollway.api.catalog",
    "tollway.api.images": "tollway.api.media.images",
    "tollway.api.jobs": "tollway.api.media.jobs",
    "tollway.api.keys": "tollway.api.accounts.keys",
    "tollway.api.media_input": "tollway.api.media.input",
    "tollway.api.ops_admin": "tollway.api.ops",
    "tollway.api.rate_limits": "tollway.api.accounts.rate_limits",
    "tollway.api.relay": "tollway.dialects.openai",
    "tollway.api.tasks": "tollway.api.media.tasks",
    "tollway.api.venice_keys": "tollway.api.accounts.venice_keys",
    "tollway.api.venice_models": "tollway.api.catalog",
    "tollway.api.web3_keys": "tollway.api.accounts.web3_keys",
    "tollway.app": "tollway.runtime.app",
    "tollway.core.accounts": "tollway.core.access.accounts",
    "tollway.core.catalog": "tollway.core.catalog.catalog",
    "tollway.core.characters": "tollway.core.catalog.characters",
    "tollway.core.chat_plan": "tollway.core.inference.chat_plan",
    "tollway.core.chat_stream": "tollway.core.inference.chat_stream",
    "tollway.core.clock": "tollway.base.clock",
    "tollway.core.fetch": "tollway.base.fetch",
    "tollway.core.ids": "tollway.base.ids",
    "tollway.core.job_engines": "tollway.providers.local.jobs",
    "tollway.core.job_pricing": "tollway.core.money.prices",
    "tollway.core.job_runner": "tollway.core.jobs.runner",
    "tollway.core.job_store": "tollway.core.jobs.store",
    "tollway.core.jobs": "tollway.core.jobs.service",
    "tollway.core.key_events_bus": "tollway.core.access.key_events_bus",
    "tollway.core.keys": "tollway.core.access.keys",
    "tollway.core.ledger": "tollway.core.money.ledger",
    "tollway.core.limits": "tollway.core.limits.limiter",
    "tollway.core.limits_gate": "tollway.core.limits.gate",
    "tollway.core.limits_redis": "tollway.core.limits.redis",
    "tollway.core.media": "tollway.core.media.pipeline",
    "tollway.core.media_store": "tollway.core.media.store",
    "tollway.core.model_names": "tollway.core.catalog.names",
    "tollway.core.models_view": "tollway.core.catalog.view",
    "tollway.core.pipeline": "tollway.core.inference.pipeline",
    "tollway.core.policy": "tollway.core.access.policy",
    "tollway.core.pricing": "tollway.core.money.prices",
    "tollway.core.router": "tollway.core.inference.router",
    "tollway.core.schemas": "tollway.core.inference.schemas",
    "tollway.core.search": "tollway.core.inference.search",
    "tollway.core.thinking": "tollway.core.inference.thinking",
    "tollway.core.tokens": "tollway.base.tokens",
    "tollway.core.usage_reports": "tollway.core.money.usage_reports",
    "tollway.core.venice": "tollway.core.inference.venice",
    "tollway.core.web3": "tollway.core.access.web3",
    "tollway.ops.access": "tollway.telemetry.access",
    "tollway.ops.logs": "tollway.telemetry.logs",
    "tollway.ops.maintenance": "tollway.runtime.maintenance",
    "tollway.ops.metrics": "tollway.telemetry.metrics",
    "tollway.ops.reload": "tollway.runtime.reload",
    "tollway.ops.server": "tollway.runtime.server",
    "tollway.ops.tracing": "tollway.telemetry.tracing",
    "tollway.providers.anthropic.shapes": "tollway.dialects.anthropic.shapes",
    "tollway.providers.anthropic.stream": "tollway.dialects.anthropic.stream",
    "tollway.providers.content": "tollway.dialects.content",
    "tollway.providers.gemini.shapes": "tollway.dialects.gemini.shapes",
    "tollway.providers.gemini.stream": "tollway.dialects.gemini.stream",
    "tollway.providers.sse": "tollway.dialects.sse",
    "tollway.services": "tollway.runtime.services",
}
SYMBOLS: dict[str, dict[str, str]] = {
    "tollway.api.accounts.rate_limits": {
        "FailedRequests": "tollway.api.middleware",
        "NOT_COUNTED": "tollway.api.middleware",
    },
    "tollway.api.http": {
        "RequestContext": "tollway.api.middleware",
    },
    "tollway.core.catalog": {
        "CatalogConfig": "tollway.base.config",
        "CatalogError": "tollway.base.config",
        "DeprecationConfig": "tollway.base.config",
        "MODEL_TYPES": "tollway.base.config",
        "ModelConfig": "tollway.base.config",
        "ModelType": "tollway.base.config",
        "PricingConfig": "tollway.base.config",
        "ProviderConfig": "tollway.base.config",
        "QueueApiConfig": "tollway.base.config",
        "RateLimitsConfig": "tollway.base.config",
        "RouteConfig": "tollway.base.config",
        "SAMPLING_PARAMETERS": "tollway.base.config",
    },
    "tollway.core.characters": {
        "CharacterConfig": "tollway.base.config",
        "EPOCH": "tollway.base.config",
    },
    "tollway.core.job_runner": {
        "Output": "tollway.providers.media",
    },
    "tollway.core.jobs": {
        "jobs_from": "tollway.runtime.services",
    },
    "tollway.core.keys": {
        "Caller": "tollway.core.caller",
    },
    "tollway.core.ledger": {
        "KeyLimit": "tollway.core.caller",
    },
    "tollway.core.limits_gate": {
        "KEY_CREATION_PER_MINUTE": "tollway.core.access.keys",
        "MAX_ACTIVE_KEYS": "tollway.core.access.keys",
        "check_key_creation": "tollway.core.access.keys",
    },
    "tollway.core.media": {
        "QUALITY": "tollway.core.money.prices",
        "TIERS": "tollway.core.money.prices",
        "image_cost": "tollway.core.money.prices",
        "seconds_cost": "tollway.core.money.prices",
        "speech_cost": "tollway.core.money.prices",
        "tier_of": "tollway.core.money.prices",
        "unit_price": "tollway.core.money.prices",
        "upscale_cost": "tollway.core.money.prices",
    },
    "tollway.core.policy": {
        "ContentPolicyConfig": "tollway.base.config",
        "ModerationConfig": "tollway.base.config",
        "PolicyRule": "tollway.base.config",
    },
}
UNCHANGED = frozenset(
    [
        "tollway.__main__",
        "tollway.api",
        "tollway.api.accounts",
        "tollway.api.accounts.admin",
        "tollway.api.accounts.billing",
        "tollway.api.accounts.keys",
        "tollway.api.accounts.rate_limits",
        "tollway.api.accounts.venice_keys",
        "tollway.api.accounts.web3_keys",
        "tollway.api.anthropic",
        "tollway.api.audio",
        "tollway.api.auth",
        "tollway.api.catalog",
        "tollway.api.characters",
        "tollway.api.gemini",
        "tollway.api.http",
        "tollway.api.idempotent",
        "tollway.api.images",
        "tollway.api.jobs",
        "tollway.api.media",
        "tollway.api.media_input",
        "tollway.api.middleware",
        "tollway.api.openai",
        "tollway.api.ops",
        "tollway.api.ops_admin",
        "tollway.api.tasks",
        "tollway.api.venice_models",
        "tollway.cli",
        "tollway.core",
        "tollway.core.idempotency",
        "tollway.errors",
        "tollway.jobs_cli",
        "tollway.providers",
        "tollway.providers.anthropic",
        "tollway.providers.anthropic.provider",
        "tollway.providers.base",
        "tollway.providers.gemini",
        "tollway.providers.gemini.provider",
        "tollway.providers.http",
        "tollway.providers.local",
        "tollway.providers.local.audio_gen",
        "tollway.providers.local.chat",
        "tollway.providers.local.embeddings",
        "tollway.providers.local.ffmpeg",
        "tollway.providers.local.images",
        "tollway.providers.local.media",
        "tollway.providers.local.speech",
        "tollway.providers.local.transcribe",
        "tollway.providers.local.video",
        "tollway.providers.media",
        "tollway.providers.openai",
        "tollway.providers.openai.media",
        "tollway.providers.openai.provider",
        "tollway.providers.queue_media",
        "tollway.settings",
        "tollway.store",
        "tollway.store.db",
        "tollway.store.migrate",
        "tollway.store.prepared",
        "tollway.store.rollup",
        "tollway.store.tables",
    ]
)
KNOWN_OLD = set(MODULES) | UNCHANGED
MARK = "\x00"  # marks rewritten text so that it is not rewritten twice in one run

FROM_RE = re.compile(r"^([ \t]*)from (tollway(?:\.\w+)*) import (\([^)]*\)|[^\n]*)", re.M)
IMPORT_RE = re.compile(r"^([ \t]*)import (tollway(?:\.\w+)+)((?: as \w+)?)$", re.M)
DOTTED = {
    **MODULES,
    **{f"{old}.{name}": f"{new}.{name}" for old, table in SYMBOLS.items() for name, new in table.items()},
}
DOTTED_RE = re.compile(
    r"(?<![\w.\x00])(" + "|".join(re.escape(k) for k in sorted(DOTTED, key=len, reverse=True)) + r")(?![\w])"
)
PATHS = {
    old.removeprefix("tollway.").replace(".", "/") + ".py": new.removeprefix("tollway.").replace(".", "/")
    + ".py"
    for old, new in MODULES.items()
    if "." in old.removeprefix("tollway.")
}
PATHS_RE = re.compile(
    r"(?:(?<=tollway/)|(?<![\w./]))("
    + "|".join(re.escape(k) for k in sorted(PATHS, key=len, reverse=True))
    + r")(?![\w])"
)


def _from(indent: str, base: str, body: str) -> str:
    body = "\n".join(line.split("#")[0] for line in body.split("\n"))
    groups: dict[str, list[str]] = {}
    for item in (n.strip() for n in body.replace("(", "").replace(")", "").replace("\n", " ").split(",")):
        if not item:
            continue
        parts = item.split()
        name, alias = parts[0], (parts[2] if len(parts) == 3 else None)
        if f"{base}.{name}" in KNOWN_OLD:  # `from package import module`
            target = MODULES.get(f"{base}.{name}", f"{base}.{name}")
            new_base, _, new_name = target.rpartition(".")
            bound = alias or name
            groups.setdefault(new_base, []).append(
                new_name if new_name == bound else f"{new_name} as {bound}"
            )
        else:
            new_base = SYMBOLS.get(base, {}).get(name) or MODULES.get(base, base)
            groups.setdefault(new_base, []).append(name if alias is None else f"{name} as {alias}")
    return "\n".join(f"{indent}from {MARK}{new} import {', '.join(names)}" for new, names in groups.items())


def rewrite(text: str) -> str:
    text = FROM_RE.sub(lambda m: _from(m.group(1), m.group(2), m.group(3)), text)
    text = IMPORT_RE.sub(
        lambda m: f"{m.group(1)}import {MARK}{MODULES.get(m.group(2), m.group(2))}{m.group(3)}", text
    )
    text = DOTTED_RE.sub(lambda m: DOTTED[m.group(1)], text)
    return PATHS_RE.sub(lambda m: PATHS[m.group(1)], text).replace(MARK, "")


def main() -> None:
    for name in sys.argv[1:]:
        path = Path(name)
        before = path.read_text()
        after = rewrite(before)
        if after != before:
            path.write_text(after)
            print(f"rewrote {name} (run ruff check --fix and ruff format after)")


if __name__ == "__main__":
    main()
