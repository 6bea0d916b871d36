"""The master key: `FTQ_SECRET_KEY` (base64 of 32 bytes), or when it is unset a key file made
once with mode 0600 in the data directory (demo, tests), with a warning. `FTQ_SECRET_KEY_OLD`
(the same form) is the key being rotated away from: it still opens data keys, never wraps."""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from pathlib import Path
from typing import Final

import msgspec
import structlog

from service.secrets.envelope import KEY_BYTES, key_id
from service.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

ENV: Final = "FTQ_SECRET_KEY"
ENV_OLD: Final = "FTQ_SECRET_KEY_OLD"
KEY_FILE: Final = "secret.key"


class MasterKey(msgspec.Struct, frozen=True):
    key: bytes
    kid: str

    def __repr__(self) -> str:  # never print the key
        return f"MasterKey(kid={self.kid!r})"


class Keyring(msgspec.Struct, frozen=True):
    """The key new data keys are wrapped with, and the keys that may still open old ones."""

    current: MasterKey
    older: tuple[MasterKey, ...] = ()

    def find(self, kid: str) -> MasterKey | None:
        for master in (self.current, *self.older):
            if master.kid == kid:
                return master
        return None

    @property
    def kids(self) -> list[str]:
        return [m.kid for m in (self.current, *self.older)]


def parse_key(text: str, name: str) -> MasterKey:
    """A master key from its base64 text; a SettingsError naming `name` when malformed."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SettingsError(
            f"{name} is not valid base64: give 32 random bytes in base64 "
            "(e.g. `python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`)"
        ) from None
    if len(raw) != KEY_BYTES:
        raise SettingsError(f"{name} must be {KEY_BYTES} bytes in base64, not {len(raw)} bytes")
    return MasterKey(raw, key_id(raw))


def new_key_text() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def key_file(data_dir: Path) -> MasterKey:
    """The data directory's key file, made (mode 0600, atomically) when there is none."""
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = data_dir / f".{KEY_FILE}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, (new_key_text() + "\n").encode())
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made one first: then use theirs
        except FileExistsError:
            pass
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return parse_key(path.read_text(encoding="utf-8"), f"the key file {path}")


def load_keyring(
    secret_key: str | None, data_dir: Path, old_key: str | None = None, *, warn: bool = True
) -> Keyring:
    """The keyring the settings give: raises SettingsError naming a malformed setting."""
    if secret_key:
        current = parse_key(secret_key, ENV)
    else:
        current = key_file(data_dir)
        if warn:
            log.warning(
                "secrets.key_file_in_use",
                path=str(data_dir / KEY_FILE),
                kid=current.kid,
                hint=f"{ENV} is not set: payload secrets are protected by a key file in the data "
                f"directory; in production set {ENV} (32 random bytes, base64)",
            )
    older = (parse_key(old_key, ENV_OLD),) if old_key else ()
    return Keyring(current, tuple(m for m in older if m.kid != current.kid))


def keyring_of(settings: Settings, *, warn: bool = True) -> Keyring:
    """The keyring of `settings` (FTQ_SECRET_KEY or the key file, and FTQ_SECRET_KEY_OLD)."""
    return load_keyring(settings.secret_key, settings.data_dir, settings.secret_key_old, warn=warn)
