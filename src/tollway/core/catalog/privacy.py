"""A key's `modelPrivacy` (Venice's API keys, issue 23): which models the key may call, by privacy tier.

Venice's document defines three policies: `ALL` allows every model; `PRIVATE_TEXT` requires text and
embedding models to be Private (media models may be Anonymous or Private); `PRIVATE_ONLY` requires
every model to be Private. A model is Private here when no upstream sees its prompts: every route is
an embedded engine (`CatalogModel.private`, shown as `model_spec.privacy`). Tollway has no TEE or
E2EE models, so Private is the only tier that passes a restricted key.
"""

from __future__ import annotations

from typing import Literal

from tollway.core.caller import Caller
from tollway.core.catalog.catalog import CatalogModel
from tollway.errors import ErrorCode, TollwayError

ModelPrivacy = Literal["ALL", "PRIVATE_TEXT", "PRIVATE_ONLY"]
POLICIES: tuple[str, ...] = ("ALL", "PRIVATE_TEXT", "PRIVATE_ONLY")
# The model types PRIVATE_TEXT holds to Private: the ones a prompt's text goes to.
TEXT_TYPES = frozenset({"text", "embedding"})


def allows(policy: str, model_type: str, private: bool) -> bool:
    """Whether a key with `policy` may call a model of `model_type` that is (or is not) private."""
    if private or policy == "ALL":
        return True
    if policy == "PRIVATE_TEXT":
        return model_type not in TEXT_TYPES
    return False  # PRIVATE_ONLY, and any value this code does not know: refuse rather than leak


def check(caller: Caller, model: CatalogModel) -> None:
    """403 before any hold or upstream call when the key's policy excludes the model."""
    policy = caller.model_privacy
    if allows(policy, model.type, model.private):
        return
    what = "every model" if policy == "PRIVATE_ONLY" else "text and embedding models"
    raise TollwayError(
        ErrorCode.MODEL_PRIVACY_FORBIDDEN,
        f"Model {model.id!r} is anonymized (an upstream sees the prompt), and this key's modelPrivacy is "
        f'{policy}: {what} must be private. Call a model whose model_spec.privacy is "private" '
        "(GET /models), or use a key whose modelPrivacy allows it (PATCH /api_keys).",
        param="model",
        extra={"modelPrivacy": policy},
    )
