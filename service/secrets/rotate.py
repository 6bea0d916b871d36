"""Master-key rotation: re-wrap every data key under the new master key.

Row by row, each a compare-and-set on the key it was read under, each committed on its own:
a rotation stopped half-way is resumed by running it again (it picks up what is still under
another key), and it is safe while ftq serves: a submit wraps its new key under whatever
FTQ_SECRET_KEY that replica runs with, a shred deletes a row the rotation then skips, and a
replica running with both keys (FTQ_SECRET_KEY=new, FTQ_SECRET_KEY_OLD=old) opens either."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import asyncpg
import msgspec

from service.secrets import envelope
from service.secrets.envelope import SecretsUnreadable
from service.secrets.keys import MasterKey
from service.secrets.vault import QUERIES
from service.webhooks import sealing

BATCH: Final = 200
FIRST_UUID: Final = "00000000-0000-0000-0000-000000000000"


class Rotation(msgspec.Struct, kw_only=True):
    rewrapped: int = 0
    gone: int = 0  # shredded or re-wrapped by someone else meanwhile
    unknown: dict[str, int] = msgspec.field(default_factory=dict)  # kid -> keys not opened


async def rotate(
    pool: asyncpg.Pool, new: MasterKey, old: Sequence[MasterKey], *, batch: int = BATCH
) -> Rotation:
    """Re-wrap every data key wrapped by one of `old` under `new`; keys wrapped by a master
    key not given are counted in `unknown` and left as they are."""
    by_kid = {m.kid: m for m in old if m.kid != new.kid}
    result = Rotation()
    after = FIRST_UUID
    while True:
        rows = await pool.fetch(QUERIES["keys_to_rewrap"], new.kid, batch, after)
        for job_id, kid, wrapped in rows:
            master = by_kid.get(kid)
            try:
                if master is None:
                    raise SecretsUnreadable(kid)
                data_key = envelope.unwrap(master.key, job_id, bytes(wrapped))
            except SecretsUnreadable:
                result.unknown[kid] = result.unknown.get(kid, 0) + 1
                continue
            rewrapped = envelope.wrap(new.key, job_id, data_key)
            status = await pool.execute(QUERIES["rewrap_key"], job_id, kid, new.kid, rewrapped)
            if status.endswith(" 1"):
                result.rewrapped += 1
            else:
                result.gone += 1
        if len(rows) < batch:
            return result
        after = rows[-1][0]


class WebhookRotation(msgspec.Struct, kw_only=True):
    resealed: int = 0
    already: int = 0  # opens with the new key: done before (a resumed rotation)
    unknown: int = 0  # opens with neither key: left as it is


async def rotate_webhooks(
    pool: asyncpg.Pool, new: MasterKey, old: Sequence[MasterKey]
) -> WebhookRotation:
    """Re-seal the webhook signing secrets (service.webhooks, the same FTQ_SECRET_KEY) under
    `new`; each row a compare-and-set on the sealed value it was read as."""
    result = WebhookRotation()
    rows = await pool.fetch(QUERIES["webhook_secrets"])
    for webhook_id, stored in rows:
        sealed = bytes(stored)
        try:
            sealing.unseal(new.key, sealed, webhook_id)
            result.already += 1
            continue
        except sealing.SealingError:
            pass
        secret = None
        for master in old:
            try:
                secret = sealing.unseal(master.key, sealed, webhook_id)
                break
            except sealing.SealingError:
                continue
        if secret is None:
            result.unknown += 1
            continue
        resealed = sealing.seal(new.key, secret.decode(), webhook_id)
        status = await pool.execute(QUERIES["reseal_webhook"], webhook_id, sealed, resealed)
        result.resealed += status.endswith(" 1")
    return result
