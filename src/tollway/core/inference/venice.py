"""Venice's `venice_parameters`, from the body and from model feature suffixes (seed 002 §3.3, §4).

A model string may carry parameters after its first `:` (`default:enable_web_search=on&
enable_web_citations=true`); values are strings coerced like the body's. Where the suffix and the
body's `venice_parameters` set the same key, the body wins. A catalog id that itself contains a `:`
(an Ollama tag such as `llama3:8b`) is matched whole before any suffix is split off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal
from urllib.parse import unquote

from tollway.errors import ErrorCode, TollwayError

SearchMode = Literal["off", "on", "auto"]
_BOOLEAN_KEYS = frozenset(
    {
        "strip_thinking_response",
        "disable_thinking",
        "enable_web_scraping",
        "enable_web_citations",
        "include_search_results_in_stream",
        "return_search_results_as_documents",
        "include_venice_system_prompt",
        "enable_e2ee",
    }
)
E2EE_REFUSED = (
    "End-to-end encrypted (E2EE) models are not offered on this server: leave `enable_e2ee` out or "
    "send false."
)
KEYS = _BOOLEAN_KEYS | {"character_slug", "enable_web_search"}


@dataclass(slots=True)
class VeniceParams:
    """The effective parameters of one chat request (defaults as the spec gives them)."""

    character_slug: str | None = None
    strip_thinking_response: bool = False
    disable_thinking: bool = False
    enable_web_search: SearchMode = "off"
    enable_web_scraping: bool = False
    enable_web_citations: bool = False
    include_search_results_in_stream: bool = False
    return_search_results_as_documents: bool = False
    include_venice_system_prompt: bool = True
    enable_e2ee: bool = False  # accepted as Venice's document has it; only false can be served

    @property
    def strips_thinking(self) -> bool:
        return self.strip_thinking_response or self.disable_thinking

    def echo(self, citations: list[dict[str, Any]]) -> dict[str, Any]:
        """The response's `venice_parameters` (seed 003's echo schema)."""
        out: dict[str, Any] = {
            "enable_e2ee": self.enable_e2ee,
            "enable_web_search": self.enable_web_search,
            "enable_web_citations": self.enable_web_citations,
            "enable_web_scraping": self.enable_web_scraping,
            "include_venice_system_prompt": self.include_venice_system_prompt,
            "include_search_results_in_stream": self.include_search_results_in_stream,
            "return_search_results_as_documents": self.return_search_results_as_documents,
            "strip_thinking_response": self.strip_thinking_response,
            "disable_thinking": self.disable_thinking,
            "web_search_citations": citations,
        }
        if self.character_slug is not None:
            out["character_slug"] = self.character_slug
        return out


_FIELDS = {f.name for f in fields(VeniceParams)}
assert _FIELDS == KEYS


def _bad(message: str, param: str) -> TollwayError:
    return TollwayError(ErrorCode.VALIDATION, message, param=param)


def coerce(key: str, value: object, param: str, *, text: bool = False) -> Any:
    """A parameter value → its typed value, or 400 naming `param`. A suffix is text (`text=True`), so
    "true" is a boolean there; in the body a boolean must be a JSON boolean."""
    if key == "character_slug":
        if not isinstance(value, str) or not value.strip():
            raise _bad("`character_slug` must be a non-empty string.", param)
        return value.strip()
    if key == "enable_web_search":
        # Booleans too: the Ruby client sends true/false (seed 003).
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, str):
            word = value.strip().lower()
            word = {"true": "on", "false": "off"}.get(word, word)
            if word in ("on", "off", "auto"):
                return word
        raise _bad("`enable_web_search` must be one of on, off, auto.", param)
    if text and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        value = value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise _bad(f"`{key}` must be true or false (a JSON boolean).", param)
    if key == "enable_e2ee" and value:
        raise _bad(E2EE_REFUSED, param)
    return value


def split_suffix(model: str) -> tuple[str, dict[str, Any]]:
    """`base:k=v&k2=v2` → (base, {k: coerced v}); no `:` → (model, {}). Malformed → 400 `param: model`."""
    base, colon, suffix = model.partition(":")
    if not colon:
        return model, {}
    if not base or not suffix:
        raise _bad(f"Malformed model feature suffix in {model!r}: write `<model>:<key>=<value>&…`.", "model")
    params: dict[str, Any] = {}
    for pair in suffix.split("&"):
        key, equals, raw = pair.partition("=")
        key = unquote(key).strip()
        value = unquote(raw.replace("+", " ")).strip()
        if not equals or not key or not value:
            raise _bad(
                f"Malformed model feature suffix {pair!r} in {model!r}: write `<key>=<value>` pairs joined by `&`.",
                "model",
            )
        if key not in KEYS:
            raise _bad(
                f"Unknown model feature suffix {key!r}; the keys are venice_parameters' names "
                f"({', '.join(sorted(KEYS))}).",
                "model",
            )
        coerced = coerce(key, value, "model", text=True)
        if key in params and params[key] != coerced:
            raise _bad(f"The model feature suffix sets {key!r} twice with different values.", "model")
        params[key] = coerced
    return base, params


def body_params(body: dict[str, Any]) -> dict[str, Any]:
    """The body's `venice_parameters`, coerced. Unknown keys are ignored (Venice adds keys over time)."""
    raw = body.get("venice_parameters")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise _bad("`venice_parameters` must be an object.", "venice_parameters")
    return {
        key: coerce(key, value, f"venice_parameters.{key}")
        for key, value in raw.items()
        if key in KEYS and value is not None
    }


def merge(suffix: dict[str, Any], body: dict[str, Any]) -> VeniceParams:
    """The body's `venice_parameters` win over the suffix's."""
    return VeniceParams(**{**suffix, **body})
