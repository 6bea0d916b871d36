"""Hide secrets in Fireworks payloads (and anything else) before they leave ftq.

The event log keeps payloads whole (Fireworks needs them); every response, stream and log
line goes through `redact`, which returns a deep copy with secret values replaced by "***"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MASK: Final = "***"

# Key names (lower-case, without "_" and "-") that contain any of these hold a secret.
_SECRET_PARTS: Final = (
    "apikey",
    "secret",
    "token",
    "password",
    "passwd",
    "credential",
    "privatekey",
    "accesskey",
    "authorization",
    "accountkey",
    "connectionstring",
)
# Inside these objects every non-container value whose key is not plainly harmless is hidden.
_STORAGE_CONFIGS: Final = frozenset({"awss3config", "azureblobstorageconfig"})
_HARMLESS: Final = frozenset(
    {
        "bucket",
        "bucketname",
        "region",
        "prefix",
        "path",
        "uri",
        "url",
        "container",
        "enabled",
        "accountname",
        "storageaccount",
        "containername",
        "endpoint",
        "name",
    }
)


def _normal(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def is_secret_key(key: str) -> bool:
    name = _normal(key)
    return any(part in name for part in _SECRET_PARTS)


def redact(value: Any) -> Any:
    """A deep copy of `value` with secret values shown as "***"."""
    return _redact(value, in_storage=False)


def _redact(value: Any, *, in_storage: bool) -> Any:
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            name = _normal(key) if isinstance(key, str) else ""
            if isinstance(key, str) and is_secret_key(key) and item is not None:
                out[key] = MASK
            elif in_storage and name not in _HARMLESS and not isinstance(item, Mapping | list):
                out[key] = MASK if item is not None else None
            else:
                out[key] = _redact(item, in_storage=in_storage or name in _STORAGE_CONFIGS)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, in_storage=in_storage) for item in value]
    return value
