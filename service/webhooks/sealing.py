"""The webhook signing secrets at rest: AES-GCM under the master key (FTQ_SECRET_KEY, or the
data directory's key file: service.secrets.keys), bound to the subscription id, so a sealed
secret moved to another row does not open. Signing needs the secret itself, so it is sealed
rather than hashed; `ftq secrets rotate` re-seals them under a new master key."""

from __future__ import annotations

import os
import secrets
from collections.abc import Sequence
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES: Final = 12


class SealingError(ValueError):
    """The master key is malformed, or a sealed secret does not open with it."""


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


def unseal_any(keys: Sequence[bytes], sealed: bytes, webhook_id: str) -> bytes:
    """Open with the first of `keys` that fits (the current master key, then older ones that
    a rotation in progress still accepts)."""
    for key in keys:
        try:
            return unseal(key, sealed, webhook_id)
        except SealingError:
            continue
    raise SealingError(f"the secret of webhook {webhook_id} opens with none of the master keys")
