"""The docs pages work offline: every page ftq serves, and every asset it links, comes from
ftq itself (issue 13 item 5); an unknown docs page is a 404 in the error shape (item 11)."""

from __future__ import annotations

import re

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.api.conftest import Users, bearer

_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url\(\s*["']?(https?://[^"')]+)""")
PAGES = ["/schema/swagger", "/schema/redoc", "/schema", "/healthz", "/readyz", "/metrics"]


def links(html: str) -> list[str]:
    return [a or b for a, b in _URL.findall(html)]


async def test_no_page_references_an_outside_host(
    app_client: AsyncTestClient[Litestar], users: Users
) -> None:
    seen: list[str] = []
    for page in PAGES:
        resp = await app_client.get(page, headers=bearer(users.admin))
        assert resp.status_code in (200, 503), page
        found = links(resp.text)
        assert not [u for u in found if re.match(r"^(https?:)?//", u)], (page, found)
        assert "unpkg.com" not in resp.text and "jsdelivr" not in resp.text, page
        assert "fonts.googleapis" not in resp.text, page
        seen += found
    assets = [u for u in seen if u.startswith("/schema/assets/")]
    assert {a.rsplit("/", 1)[-1] for a in assets} >= {
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-ui-standalone-preset.js",
        "redoc.standalone.js",
    }
    for asset in set(assets):
        resp = await app_client.get(asset)
        assert resp.status_code == 200 and len(resp.content) > 100, asset


async def test_an_unknown_docs_page_is_a_json_404(app_client: AsyncTestClient[Litestar]) -> None:
    for path in ("/schema/elements", "/schema/nope", "/schema/assets/swagger/nope.js"):
        resp = await app_client.get(path)
        assert resp.status_code == 404, path
        assert resp.json()["error"]["code"] == "NOT_FOUND", path
