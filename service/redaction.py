"""Hide secrets in Fireworks payloads (and anything else) before they leave ftq.

The event log keeps payloads whole (Fireworks needs them); every response, stream and log
line goes through `redact`, which returns a deep copy with secret values replaced by "***".
Which fields are secret is `service.secret_fields`' call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from service.secret_fields import is_secret_key, is_secret_path

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
            if isinstance(key, str) and item is not None and _secret(here):
                out[key] = MASK
            else:
                out[key] = _redact(item, here)
        return out
    if isinstance(value, list | tuple):
        return [_redact(item, path) for item in value]
    return value


def _secret(path: tuple[str, ...]) -> bool:
    # A payload may sit anywhere in what is redacted (an event's `fireworks_payload`, a log
    # line's field): a Fireworks path matches at any depth.
    return any(is_secret_path(path[i:]) for i in range(len(path)))
