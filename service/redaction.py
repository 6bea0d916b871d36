"""Hide secrets in Fireworks payloads (and anything else) before they leave ftq.

The event log keeps payloads whole (Fireworks needs them); every response, stream and log
line goes through `redact`, which returns a deep copy with secret values replaced by "***".
Which fields are secret is `service.secret_fields`' call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from service.secret_fields import LEAVES, is_secret_key, is_secret_place

MASK: Final = "***"

__all__ = ["MASK", "is_secret_key", "redact"]


def redact(value: Any) -> Any:
    """A deep copy of `value` with secret values shown as "***"."""
    return _redact(value, ())


def _redact(value: Any, path: tuple[str, ...]) -> Any:
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            here = (*path, key) if isinstance(key, str) else path
            if isinstance(key, str) and item is not None and is_secret_place(here):
                out[key] = MASK
            elif isinstance(item, LEAVES):
                out[key] = item  # nothing below it to hide
            else:
                out[key] = _redact(item, here)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, path) for item in value]
    return value
