"""Envelope encryption of a payload's secret fields (AES-256-GCM, from `cryptography`).

Each job with secrets gets its own data key; each secret value is sealed under it as a
marker object `{"$ftq_enc": "v1", "n": nonce, "c": ciphertext}` (base64), with the job id and
the field's place in the payload as associated data, so a marker cannot be moved to another
job or field. The data key itself is wrapped by the master key (`wrap`/`unwrap`), with the
job id as associated data. Which fields are secret is `service.secret_fields`' call (the
redaction rules), walked exactly as `service.redaction.redact` walks them.

No IO here; randomness (`random`, default `os.urandom`) is passed in."""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.secret_fields import LEAVES, is_secret_place

MARK: Final = "$ftq_enc"
VERSION: Final = "v1"
REDACTED: Final = "redacted"  # a marker `--export --redact` leaves where a plain secret was
KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
Random = Callable[[int], bytes]
_json = msgspec.json.Encoder()


class SecretsUnreadable(Exception):
    """A sealed value cannot be opened: no data key (shredded), or the wrong key."""


def new_data_key(random: Random = os.urandom) -> bytes:
    return random(KEY_BYTES)


def key_id(master: bytes) -> str:
    """A short public name of a master key (never the key): which key wrapped a data key."""
    return hashlib.sha256(b"ftq-master-key-id\x00" + master).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise SecretsUnreadable("malformed sealed value")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise SecretsUnreadable("malformed sealed value") from exc


def _key_aad(job_id: str) -> bytes:
    return b"ftq-data-key\x00" + job_id.encode()


@functools.lru_cache(maxsize=8)  # master keys only (a process holds one or two): one per submit
def _master_aead(master: bytes) -> AESGCM:
    return AESGCM(master)


def wrap(master: bytes, job_id: str, data_key: bytes, random: Random = os.urandom) -> bytes:
    """The data key sealed by the master key: nonce || ciphertext+tag."""
    nonce = random(NONCE_BYTES)
    return nonce + _master_aead(master).encrypt(nonce, data_key, _key_aad(job_id))


def unwrap(master: bytes, job_id: str, wrapped: bytes) -> bytes:
    try:
        return _master_aead(master).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _key_aad(job_id)
        )
    except (InvalidTag, ValueError) as exc:
        raise SecretsUnreadable("the data key does not open with this master key") from exc


def is_marker(value: object) -> bool:
    return isinstance(value, Mapping) and MARK in value


def _aad(job_id: str, where: str) -> bytes:
    return b"ftq-secret\x00" + job_id.encode() + b"\x00" + where.encode()


Visit = Callable[[Any, str], Any]


def _walk(value: Any, path: tuple[str, ...], where: str, visit: Visit) -> Any:
    """A copy of `value` with every secret value `v` at place `where` replaced by
    `visit(v, where)`; the same fields `redact` hides, at any depth."""
    if isinstance(value, Mapping):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                out[key] = _walk(item, path, where, visit)
                continue
            here = (*path, key)
            if item is not None and is_secret_place(here):
                out[key] = visit(item, f"{where}.{key}" if where else key)
            elif isinstance(item, LEAVES):
                out[key] = item  # nothing below it to look at
            else:
                out[key] = _walk(item, here, f"{where}.{key}" if where else key, visit)
        return out
    if isinstance(value, list | tuple):
        return [_walk(item, path, f"{where}[{i}]", visit) for i, item in enumerate(value)]
    return value


def _places(value: Any, path: tuple[str, ...], where: str, found: list[tuple[Any, str]]) -> None:
    """Append to `found` every secret value of `value` with its place: `_walk`'s fields,
    read without copying anything."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                _places(item, path, where, found)
                continue
            here = (*path, key)
            if item is not None and is_secret_place(here):
                found.append((item, f"{where}.{key}" if where else key))
            elif not isinstance(item, LEAVES):
                _places(item, here, f"{where}.{key}" if where else key, found)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _places(item, path, f"{where}[{i}]", found)


def _secrets(payload: Mapping[str, Any]) -> list[tuple[Any, str]]:
    found: list[tuple[Any, str]] = []
    _places(payload, (), "", found)
    return found


def secret_fields(payload: Mapping[str, Any]) -> list[str]:
    """The places (`wandbConfig.apiKey`, `a.b[0].token`) of the payload's secret values."""
    return [where for _, where in _secrets(payload)]


def plain_fields(payload: Mapping[str, Any]) -> list[str]:
    """The places of secret values stored in plain text (not sealed, not redacted)."""
    return [where for value, where in _secrets(payload) if not is_marker(value)]


def sealed_fields(payload: Mapping[str, Any]) -> list[str]:
    """The places of sealed (or redacted) secret values: what a job needs a data key for."""
    return [where for value, where in _secrets(payload) if is_marker(value)]


def seal(
    payload: Mapping[str, Any], job_id: str, data_key: bytes, random: Random = os.urandom
) -> dict[str, Any]:
    """A copy of `payload` with every secret value sealed under `data_key`."""
    return _seal(payload, job_id, lambda: data_key, random)


def seal_under_new_key(
    payload: Mapping[str, Any], job_id: str, random: Random = os.urandom
) -> tuple[dict[str, Any], bytes] | None:
    """`seal` under a data key made at the first secret met, in one walk: the sealed copy
    and the key; None when the payload has no secret."""
    made: list[bytes] = []

    def key() -> bytes:
        made.append(new_data_key(random))
        return made[0]

    sealed = _seal(payload, job_id, key, random)
    return (sealed, made[0]) if made else None


def _seal(
    payload: Mapping[str, Any], job_id: str, key: Callable[[], bytes], random: Random
) -> dict[str, Any]:
    aead: AESGCM | None = None  # made at the first secret

    def visit(value: Any, where: str) -> Any:
        nonlocal aead
        if is_marker(value):  # never seal twice, never accept a forged marker as ours
            raise ValueError(f"{where}: a secret value may not be a {MARK!r} object")
        if aead is None:
            aead = AESGCM(key())
        nonce = random(NONCE_BYTES)
        sealed = aead.encrypt(nonce, _json.encode(value), _aad(job_id, where))
        return {MARK: VERSION, "n": _b64(nonce), "c": _b64(sealed)}

    result: dict[str, Any] = _walk(payload, (), "", visit)
    return result


def unseal(payload: Mapping[str, Any], job_id: str, data_key: bytes | None) -> dict[str, Any]:
    """The payload as submitted: every sealed value opened (plain ones are left as they are).
    Raises `SecretsUnreadable` when a value cannot be opened (no key, wrong key, redacted)."""
    aead = AESGCM(data_key) if data_key is not None else None

    def visit(value: Any, where: str) -> Any:
        if not is_marker(value):
            return value
        if value.get(MARK) != VERSION or aead is None:
            raise SecretsUnreadable(f"{where}: the secret is gone (shredded or redacted)")
        try:
            plain = aead.decrypt(
                _unb64(value.get("n")), _unb64(value.get("c")), _aad(job_id, where)
            )
        except (InvalidTag, ValueError) as exc:
            raise SecretsUnreadable(f"{where}: does not open with this job's data key") from exc
        return msgspec.json.decode(plain)

    result: dict[str, Any] = _walk(payload, (), "", visit)
    return result


def redact_plain(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with every plain secret value replaced by a `redacted` marker (sealed ones kept):
    what `ftq replay --export --redact` writes."""

    def visit(value: Any, where: str) -> Any:
        return value if is_marker(value) else {MARK: REDACTED}

    result: dict[str, Any] = _walk(payload, (), "", visit)
    return result


def posing_as_sealed(payload: Mapping[str, Any]) -> list[dict[str, str]]:
    """Validation problems of a submitted payload: secret values that look like sealed ones
    (ftq seals the secrets itself; a sealed value is never accepted from outside)."""
    return [
        {"field": f"fireworks_payload.{where}", "problem": f"a secret may not be a {MARK} object"}
        for where in sealed_fields(payload)
    ]
