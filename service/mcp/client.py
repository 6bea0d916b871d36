"""ftq's HTTP API as the MCP tools use it: the CLI's session (FTQ_URL, the bearer key,
its timeouts) with every answer that is not 2xx turned into a `ToolFailure` carrying the
API's own code, message and details."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import aiohttp
import msgspec

from service.cli.http import Api, api
from service.mcp.errors import ToolFailure, from_response

_NEXT: Final = re.compile(r'<(?P<url>[^>]*)>\s*;\s*rel="?next"?')
NO_KEY: Final = (
    "SFTQ_API_KEY is not set in the MCP server's environment: set it (your sftq_ key) where "
    "the MCP client starts `ftq mcp`, then restart the server"
)


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: Mapping[str, str]  # case-insensitive (aiohttp's)


class Ftq:
    """One ftq, seen with one key; `api` is None when no key was given."""

    def __init__(self, api_: Api | None, url: str) -> None:
        self.api = api_
        self.url = url.rstrip("/")

    def session(self) -> Api:
        if self.api is None:
            raise ToolFailure("UNAUTHENTICATED", NO_KEY)
        return self.api

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        api_ = self.session()
        data = None if body is None else msgspec.json.encode(body)
        sent = {"Content-Type": "application/json"} if data is not None else {}
        try:
            async with api_.session.request(
                method,
                api_.url + path,
                data=data,
                params=dict(params or {}),
                headers={**sent, **(headers or {})},
            ) as resp:
                raw = await resp.read()
                if resp.status >= 300:
                    raise from_response(resp.status, raw)
                decoded = msgspec.json.decode(raw) if raw else None
                return Answer(resp.status, decoded, resp.headers)
        except aiohttp.ClientError as exc:
            message = f"cannot reach ftq at {self.url}: {type(exc).__name__}: {exc}"
            raise ToolFailure("UNAVAILABLE", message) from None
        except TimeoutError:
            raise ToolFailure("UNAVAILABLE", f"ftq at {self.url} did not answer in time") from None
        except msgspec.DecodeError:
            raise ToolFailure("UNAVAILABLE", f"ftq at {self.url} answered with bad JSON") from None

    async def job(self, job_id: str) -> dict[str, Any]:
        job: dict[str, Any] = (await self.call("GET", f"/jobs/{job_id}")).body
        return job


def next_cursor(headers: Mapping[str, str]) -> str | None:
    """The `cursor` of the `Link: <...>; rel="next"` header, None on the last page."""
    match = _NEXT.search(headers.get("Link", ""))
    if match is None:
        return None
    cursors = parse_qs(urlsplit(match["url"]).query).get("cursor")
    return cursors[0] if cursors else None


@asynccontextmanager
async def connect(url: str, key: str | None) -> AsyncIterator[Ftq]:
    """A session on `url` with `key`; without a key every call fails UNAUTHENTICATED (the
    agent reads why) instead of the server refusing to start."""
    if not key:
        yield Ftq(None, url)
        return
    async with api(url, key) as api_:
        yield Ftq(api_, url)
