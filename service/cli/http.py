"""The HTTP side of the client commands: where the API is, the bearer key, and one call
helper that turns the API's error body into `CODE: message`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Final

import aiohttp
import msgspec
import typer
from yarl import URL

from service.cli.app import Failure

DEFAULT_URL: Final = "http://127.0.0.1:8000"
TIMEOUT: Final = aiohttp.ClientTimeout(total=60, sock_connect=10)

Url = Annotated[
    str, typer.Option("--url", envvar="FTQ_URL", help="The ftq API base URL.", show_default=True)
]
Key = Annotated[
    str | None,
    typer.Option("--key", envvar="SFTQ_API_KEY", help="Your sftq_ API key.", show_default=False),
]


INPUT_ERROR_EXIT: Final = 2  # usage and input errors (a 400 or 413 from the API)


def error_text(status: int, body: bytes) -> str:
    """`CODE: message (field: problem; ...)` from an ftq error body, every `details` entry
    included, on one line; the status when the body is not one."""
    try:
        error = msgspec.json.decode(body)["error"]
        text = f"{error['code']}: {error['message']}"
        details = [
            ": ".join(str(d[k]) for k in ("field", "problem") if d.get(k))
            for d in error.get("details") or []
            if isinstance(d, dict)
        ]
        details = [d for d in details if d]
        return f"{text} ({'; '.join(details)})" if details else text
    except (msgspec.DecodeError, KeyError, TypeError, AttributeError):
        text = body.decode(errors="replace").strip()[:200]
        return f"HTTP {status}: {text}" if text else f"HTTP {status}"


class Api:
    """A session against one ftq, authenticated with one key."""

    def __init__(self, session: aiohttp.ClientSession, url: str) -> None:
        self.session = session
        self.url = url.rstrip("/")
        self.last_headers: dict[str, str] = {}  # of the last `call`'s answer, names lowercase

    async def pages(
        self, path: str, params: dict[str, str] | None = None
    ) -> AsyncIterator[list[Any]]:
        """Each page of a listing, following the `Link: <...>; rel="next"` header to the end."""
        url: str | None = self.url + path
        while url is not None:
            try:
                async with self.session.get(url, params=params) as resp:
                    raw = await resp.read()
                    if resp.status >= 300:
                        raise Failure(error_text(resp.status, raw))
                    following = resp.links.get("next")
                    url = None if following is None else str(resp.url.join(URL(following["url"])))
                    params = None  # the next page's URL carries the filters and the cursor
                    yield msgspec.json.decode(raw)
            except aiohttp.ClientError as exc:
                raise Failure(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from None

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """(status, decoded JSON) of a 2xx answer; anything else raises `Failure`. The body is
        `body` as JSON, or `content` as it is."""
        data = (
            content
            if content is not None
            else (None if body is None else msgspec.json.encode(body))
        )
        sent = {"Content-Type": content_type} if data is not None else {}
        try:
            async with self.session.request(
                method,
                self.url + path,
                data=data,
                params=params,
                headers={**sent, **(headers or {})},
            ) as resp:
                raw = await resp.read()
                self.last_headers = {k.lower(): v for k, v in resp.headers.items()}
                if resp.status >= 300:
                    code = INPUT_ERROR_EXIT if resp.status in (400, 413) else 1
                    raise Failure(error_text(resp.status, raw), code)
                return resp.status, msgspec.json.decode(raw) if raw else None
        except aiohttp.ClientError as exc:
            raise Failure(f"cannot reach {self.url}: {type(exc).__name__}: {exc}") from None
        except TimeoutError:
            raise Failure(f"{self.url} did not answer in time") from None


@asynccontextmanager
async def api(url: str, key: str | None) -> AsyncIterator[Api]:
    """A session with the bearer key; a missing key is a usage error (exit 2)."""
    if not key:
        raise Failure("SFTQ_API_KEY is not set: export it or pass --key", 2)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(headers=headers, timeout=TIMEOUT) as session:
        yield Api(session, url)
