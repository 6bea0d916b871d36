"""The webhook signing secrets at rest: AES-GCM under the master key FTQ_SECRET_KEY (base64 of
32 bytes), bound to the subscription id, so a sealed secret moved to another row does not open.
Signing needs the secret itself, so it is sealed rather than hashed."""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES: Final = 12
KEY_BYTES: Final = 32


class SealingError(ValueError):
    """The master key is malformed, or a sealed secret does not open with it."""


def master_key(encoded: str) -> bytes:
    """The key of FTQ_SECRET_KEY; a malformed value raises with what is wrong (never the value)."""
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SealingError("FTQ_SECRET_KEY is not base64") from None
    if len(key) != KEY_BYTES:
        raise SealingError(f"FTQ_SECRET_KEY must decode to {KEY_BYTES} bytes, not {len(key)}")
    return key


def new_secret() -> str:
    """A signing secret for a subscription that did not bring its own."""
    return "whsec_" + secrets.token_urlsafe(32)


def seal(key: bytes, secret: str, webhook_id: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, secret.encode(), webhook_id.encode())


def unseal(key: bytes, sealed: bytes, webhook_id: str) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], webhook_id.encode())
    except InvalidTag:
        message = f"the secret of webhook {webhook_id} does not open with this key"
        raise SealingError(message) from None
