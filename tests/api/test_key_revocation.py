"""A revoked key stops working at once, in the instance that revoked it and in another one
(two apps on one database, like two `ftq serve` processes), although both keep known keys
in memory (service.directory.KeyLookup)."""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from service import directory
from service.api.runtime import runtime_of
from service.app import create_app
from service.settings import Settings
from tests.api.conftest import META, bearer, make_user


async def test_a_revoked_key_is_refused_at_once_by_both_instances(
    pool: asyncpg.Pool, app: Litestar, api_settings: Settings
) -> None:
    other = create_app(api_settings, run_scheduler=False)
    async with AsyncTestClient(app=app) as first, AsyncTestClient(app=other) as second:
        _, admin = await make_user(pool, "root@example.com", "admin")
        await directory.add_user(pool, "bob@example.com", "member", META)
        bob = await directory.issue_key(pool, "bob@example.com", "laptop", META)
        for client in (first, second, first, second):  # known to both, kept in memory
            assert (await client.get("/jobs", headers=bearer(bob.key))).status_code == 200
        for client in (first, second):
            assert runtime_of(client.app.state).keys.caching
        revoked = await first.delete(f"/admin/keys/{bob.id}", headers=bearer(admin))
        assert revoked.status_code == 200, revoked.text
        # no sleep, no retry: the very next request, to either instance
        for client in (second, first):
            refused = await client.get("/jobs", headers=bearer(bob.key))
            assert refused.status_code == 401, (client is first, refused.text)
            assert refused.json()["error"]["code"] == "UNAUTHENTICATED"
