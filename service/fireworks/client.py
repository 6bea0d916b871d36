"""Async client for the Fireworks fine-tuning control plane, with retries on transient errors."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
import msgspec
import structlog

from events.domain.job_events import Kind
from service.metrics import count_fireworks_error

from .errors import FireworksError, NotFound, Rejected, Transient, classify, error_kind
from .kinds import COLLECTION, ID_PARAM, KINDS, LIST_KEY
from .models import FireworksJob, Quota

log = structlog.get_logger(__name__)

GPU_COUNT_HEADER = "X-Ftq-Gpu-Count"
GPU_TYPE_HEADER = "X-Ftq-Gpu-Type"
PAGE_SIZE = 200

Sleep = Callable[[float], Awaitable[None]]


class FireworksClient:
    """Speaks Fireworks' REST API for one account; the key never leaves the auth header."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        base_url: str,
        api_key: str,
        account_id: str,
        *,
        timeout_s: float = 30.0,
        max_attempts: int = 5,
        backoff_base_s: float = 0.5,
        backoff_max_s: float = 8.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.account_id = account_id
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._max_attempts = max(1, max_attempts)
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"FireworksClient(base_url={self._base_url!r}, account_id={self.account_id!r})"

    # -- jobs ---------------------------------------------------------------------------

    async def create_job(
        self,
        kind: Kind,
        job_id: str,
        payload: Mapping[str, Any],
        *,
        gpu_count: int | None = None,
        gpu_type: str | None = None,
    ) -> FireworksJob:
        """Create a job under the caller-chosen id; a 409 means "GET it", never retry.
        `gpu_count` and `gpu_type` travel as headers the simulator reads (Fireworks' own
        payloads carry neither)."""
        headers: dict[str, str] | None = None
        if gpu_count is not None or gpu_type is not None:
            headers = {}
            if gpu_count is not None:
                headers[GPU_COUNT_HEADER] = str(gpu_count)
            if gpu_type is not None:
                headers[GPU_TYPE_HEADER] = gpu_type
        body = await self._call(
            "POST",
            f"/{COLLECTION[kind]}",
            params={ID_PARAM[kind]: job_id},
            json=dict(payload),
            headers=headers,
            requested_gpus=gpu_count,
        )
        return msgspec.convert(body, FireworksJob)

    async def get_job(self, kind: Kind, job_id: str) -> FireworksJob:
        """Fetch one job; raises NotFound once it is deleted."""
        body = await self._call("GET", f"/{COLLECTION[kind]}/{job_id}")
        return msgspec.convert(body, FireworksJob)

    async def list_jobs(self, kind: Kind, *, filter: str | None = None) -> list[FireworksJob]:
        """All jobs of one kind, following `nextPageToken` across pages."""
        params = {"filter": filter} if filter else {}
        items = await self._paginate(f"/{COLLECTION[kind]}", LIST_KEY[kind], params)
        return msgspec.convert(items, list[FireworksJob])

    async def list_all_jobs(self) -> list[tuple[Kind, FireworksJob]]:
        """Every job of every kind on the account."""
        result: list[tuple[Kind, FireworksJob]] = []
        for kind in KINDS:
            result.extend((kind, job) for job in await self.list_jobs(kind))
        return result

    async def cancel_job(self, kind: Kind, job_id: str) -> None:
        """POST `:cancel`; where that verb is not served (404/501) fall back to DELETE."""
        try:
            await self._call("POST", f"/{COLLECTION[kind]}/{job_id}:cancel", json={})
        except (NotFound, Rejected) as exc:
            if not isinstance(exc, NotFound) and exc.status != 501:
                raise
            await self.delete_job(kind, job_id)

    async def delete_job(self, kind: Kind, job_id: str) -> None:
        """DELETE the job; Fireworks releases its GPUs and keeps the id reserved."""
        await self._call("DELETE", f"/{COLLECTION[kind]}/{job_id}")

    async def resume_job(self, kind: Kind, job_id: str) -> FireworksJob:
        """POST `:resume` for a FAILED, CANCELLED or PAUSED job."""
        body = await self._call("POST", f"/{COLLECTION[kind]}/{job_id}:resume", json={})
        return msgspec.convert(body, FireworksJob)

    # -- quotas -------------------------------------------------------------------------

    async def list_quotas(self) -> list[Quota]:
        """All quotas of the account."""
        return msgspec.convert(await self._paginate("/quotas", "quotas", {}), list[Quota])

    async def get_quota(self, quota_id: str) -> Quota:
        """One quota, e.g. `training-h200-count`."""
        return msgspec.convert(await self._call("GET", f"/quotas/{quota_id}"), Quota)

    # -- plumbing -----------------------------------------------------------------------

    async def _paginate(self, path: str, key: str, params: dict[str, str]) -> list[Any]:
        items: list[Any] = []
        token = ""
        while True:
            page_params = {**params, "pageSize": str(PAGE_SIZE)}
            if token:
                page_params["pageToken"] = token
            body = await self._call("GET", path, params=page_params)
            items.extend(body.get(key) or [])
            token = str(body.get("nextPageToken") or "")
            if not token:
                return items

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        requested_gpus: int | None = None,
    ) -> dict[str, Any]:
        """One logical call: retries Transient failures with jittered exponential backoff."""
        full_path = f"/v1/accounts/{self.account_id}{path}"
        for attempt in range(1, self._max_attempts + 1):
            try:
                return await self._attempt(method, full_path, params, json, headers, requested_gpus)
            except Transient as exc:
                if attempt >= self._max_attempts:
                    raise
                delay = self._delay(attempt, exc.retry_after)
                log.warning(
                    "fireworks.retry",
                    method=method,
                    path=full_path,
                    status=exc.status,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(
        self,
        method: str,
        full_path: str,
        params: Mapping[str, str] | None,
        json: Any,
        headers: Mapping[str, str] | None,
        requested_gpus: int | None,
    ) -> dict[str, Any]:
        data = msgspec.json.encode(json) if json is not None else None
        all_headers = {**self._auth, **(headers or {})}
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            return await self._exchange(
                method, full_path, params, data, all_headers, requested_gpus
            )
        except FireworksError as exc:
            count_fireworks_error(error_kind(exc))
            raise

    async def _exchange(
        self,
        method: str,
        full_path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        all_headers: dict[str, str],
        requested_gpus: int | None,
    ) -> dict[str, Any]:
        try:
            async with self._session.request(
                method,
                self._base_url + full_path,
                params=params,
                data=data,
                headers=all_headers,
                timeout=self._timeout,
            ) as response:
                text = await response.text()
                if response.status >= 300:
                    raise classify(
                        response.status, text, response.headers, requested=requested_gpus
                    )
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Transient(0, f"{method} {full_path}: {type(exc).__name__}") from None
        if not text.strip():
            return {}
        decoded = msgspec.json.decode(text)
        return decoded if isinstance(decoded, dict) else {}

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling: float = min(self._backoff_max_s, self._backoff_base_s * 2 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)
