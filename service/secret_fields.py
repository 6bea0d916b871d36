"""Which fields hold a secret: the secret-bearing paths Fireworks defines, and keys whose
last word names a secret. One list for redaction (and for encrypting secrets at rest).

A key is split into words on camelCase and snake/kebab case: `hfToken` -> hf, token. Its
last word decides: `token`, `secret`, `password`, `credential(s)` hide it, and so does
`key` after `api`, `private`, `access`, `secret` or `account`. So `maxOutputTokens`,
`tokenizerName` and `keyColumn` stay visible."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Final

# Dotted paths (from the payload's root) Fireworks documents as secret-bearing.
SECRET_PATHS: Final = frozenset(
    {
        "wandbConfig.apiKey",
        "awsS3Config.credentialsSecret",
        "awsS3Config.secretAccessKey",
        "awsS3Config.sessionToken",
        "azureBlobStorageConfig.credentialsSecret",
        "azureBlobStorageConfig.sasToken",
        "azureBlobStorageConfig.accountKey",
        "azureBlobStorageConfig.connectionString",
        "azureBlobStorageConfig.clientSecret",
    }
)
SECRET_LAST_WORDS: Final = frozenset(
    {"token", "secret", "password", "passwd", "credential", "credentials", "authorization"}
)
KEY_QUALIFIERS: Final = frozenset({"api", "private", "access", "secret", "account"})
# Whole names that are secrets whatever their words (headers, DSN-like strings).
SECRET_NAMES: Final = frozenset({"connectionstring", "apikey", "privatekey", "accesskey"})

# Values with nothing inside: a walk looking for secrets stops at them without asking
# whether they are a Mapping (an ABC check, slow for the many values that are not).
LEAVES: Final = (str, int, float, type(None))

_WORD: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def words(key: str) -> list[str]:
    """`maxOutputTokens` -> [max, output, tokens]; `api_key` -> [api, key]."""
    return [w.lower() for w in _WORD.findall(key)]


def is_secret_key(key: str) -> bool:
    """Whether a key's name alone says its value is a secret."""
    parts = words(key)
    if not parts:
        return False
    if "".join(parts) in SECRET_NAMES:
        return True
    last = parts[-1]
    if last in SECRET_LAST_WORDS:
        return True
    return last in {"key", "keys"} and len(parts) > 1 and parts[-2] in KEY_QUALIFIERS


def is_secret_path(path: Sequence[str]) -> bool:
    """Whether the value at `path` (keys from the payload's root) is a secret."""
    if not path:
        return False
    return ".".join(path) in SECRET_PATHS or is_secret_key(path[-1])


@functools.lru_cache(maxsize=4096)  # payloads repeat their keys: asked on every submit and view
def is_secret_place(path: tuple[str, ...]) -> bool:
    """Whether the value at `path` is a secret wherever in a larger document its payload
    sits (an event's `fireworks_payload`, a log line's field): a Fireworks path matches at
    any depth."""
    return any(is_secret_path(path[i:]) for i in range(len(path)))
