"""Wire-level tests of FireworksClient against aioresponses (paths, retries, error mapping)."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aioresponses import aioresponses
from structlog.testing import capture_logs
from yarl import URL

from service.fireworks import (
    COLLECTION,
    ID_PARAM,
    KINDS,
    AlreadyExists,
    FireworksClient,
    FireworksError,
    Kind,
    NotFound,
    QuotaExhausted,
    Rejected,
    Transient,
    Unauthenticated,
    classify,
)

BASE = "https://fw.test"
ACCOUNT = "acct-1"
KEY = "fw_SECRET_key_0123456789"
ROOT = f"{BASE}/v1/accounts/{ACCOUNT}"


class RecordingSleep:
    """A fake sleep that records the delays it was asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


@pytest.fixture
def sleep() -> RecordingSleep:
    return RecordingSleep()


@pytest.fixture
async def client(sleep: RecordingSleep) -> AsyncIterator[FireworksClient]:
    async with aiohttp.ClientSession() as session:
        yield FireworksClient(session, BASE, KEY, ACCOUNT, max_attempts=4, sleep=sleep)


class CompatResponse(aiohttp.ClientResponse):
    """aioresponses 0.7.9 predates aiohttp 3.14's required `stream_writer` argument."""

    def __init__(self, method: str, url: URL, **kwargs: Any) -> None:
        kwargs.setdefault("stream_writer", SimpleNamespace(output_size=0))
        super().__init__(method, url, **kwargs)


class Mocked(aioresponses):
    """aioresponses whose canned responses build on aiohttp 3.14."""

    def add(self, *args: Any, **kwargs: Any) -> None:
        kwargs["response_class"] = kwargs.get("response_class") or CompatResponse
        super().add(*args, **kwargs)


@pytest.fixture
def mocked() -> Iterator[aioresponses]:
    with Mocked() as m:
        yield m


def calls(m: aioresponses, method: str, url: str) -> list[Any]:
    return list(m.requests.get((method, URL(url)), []))


def job(job_id: str, kind: Kind = "SFT", **extra: Any) -> dict[str, Any]:
    return {"name": f"accounts/{ACCOUNT}/{COLLECTION[kind]}/{job_id}", **extra}


@pytest.mark.parametrize("kind", KINDS)
async def test_create_uses_kind_path_id_param_auth_and_gpu_header(
    client: FireworksClient, mocked: aioresponses, kind: Kind
) -> None:
    url = f"{ROOT}/{COLLECTION[kind]}?{ID_PARAM[kind]}=job-1"
    mocked.post(url, payload=job("job-1", kind, state="JOB_STATE_CREATING"))
    created = await client.create_job(kind, "job-1", {"dataset": "d"}, gpu_count=8)
    assert created.job_id == "job-1"
    assert created.state == "JOB_STATE_CREATING"
    [call] = calls(mocked, "POST", url)
    headers = call.kwargs["headers"]
    assert headers["Authorization"] == f"Bearer {KEY}"
    assert headers["X-Ftq-Gpu-Count"] == "8"
    assert call.kwargs["data"] == b'{"dataset":"d"}'


async def test_create_without_gpu_count_sends_no_gpu_header(
    client: FireworksClient, mocked: aioresponses
) -> None:
    url = f"{ROOT}/dpoJobs?dpoJobId=j2"
    mocked.post(url, payload=job("j2", "DPO"))
    await client.create_job("DPO", "j2", {"dataset": "d"})
    [call] = calls(mocked, "POST", url)
    assert "X-Ftq-Gpu-Count" not in call.kwargs["headers"]


@pytest.mark.parametrize("kind", KINDS)
async def test_get_job_path_and_fields(
    client: FireworksClient, mocked: aioresponses, kind: Kind
) -> None:
    body = job("j", kind, state="JOB_STATE_FAILED", status={"code": "INTERNAL", "message": "oom"})
    body |= {"jobProgress": {"percent": 42}, "completedTime": "2026-01-01T00:00:00Z"}
    mocked.get(f"{ROOT}/{COLLECTION[kind]}/j", payload=body)
    got = await client.get_job(kind, "j")
    assert (got.state, got.status_message, got.percent) == ("JOB_STATE_FAILED", "oom", 42)
    assert got.completed_time == "2026-01-01T00:00:00Z"


async def test_list_jobs_follows_page_tokens(client: FireworksClient, mocked: aioresponses) -> None:
    first = f"{ROOT}/supervisedFineTuningJobs?pageSize=200"
    second = f"{ROOT}/supervisedFineTuningJobs?pageSize=200&pageToken=tok2"
    page1 = [job("a"), job("b")]
    mocked.get(first, payload={"supervisedFineTuningJobs": page1, "nextPageToken": "tok2"})
    mocked.get(second, payload={"supervisedFineTuningJobs": [job("c")], "nextPageToken": ""})
    jobs = await client.list_jobs("SFT")
    assert [j.job_id for j in jobs] == ["a", "b", "c"]
    assert len(calls(mocked, "GET", first)) == 1
    assert len(calls(mocked, "GET", second)) == 1


async def test_list_all_jobs_covers_every_kind(
    client: FireworksClient, mocked: aioresponses
) -> None:
    for kind in KINDS:
        mocked.get(
            f"{ROOT}/{COLLECTION[kind]}?pageSize=200",
            payload={COLLECTION[kind]: [job(f"{kind.lower()}-1", kind)]},
        )
    result = await client.list_all_jobs()
    assert [(k, j.job_id) for k, j in result] == [
        ("SFT", "sft-1"),
        ("DPO", "dpo-1"),
        ("RFT", "rft-1"),
    ]


async def test_quotas_list_all_pages_and_get(client: FireworksClient, mocked: aioresponses) -> None:
    quota = {
        "name": f"accounts/{ACCOUNT}/quotas/training-h200-count",
        "value": "16",
        "maxValue": "32",
        "usage": 4.0,
    }
    mocked.get(f"{ROOT}/quotas?pageSize=200", payload={"quotas": [quota], "nextPageToken": "p"})
    mocked.get(f"{ROOT}/quotas?pageSize=200&pageToken=p", payload={"quotas": [quota]})
    mocked.get(f"{ROOT}/quotas/training-h200-count", payload=quota)
    quotas = await client.list_quotas()
    assert len(quotas) == 2
    got = await client.get_quota("training-h200-count")
    assert (got.quota_id, got.limit, got.max_value) == ("training-h200-count", 16, "32")
    assert got.usage == 4.0


async def test_retry_after_seconds_is_honoured(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/dpoJobs/j"
    mocked.get(url, status=503, headers={"Retry-After": "3"}, body="{}")
    mocked.get(url, status=429, headers={"retry-after-ms": "250"}, payload={"message": "slow"})
    mocked.get(url, payload=job("j", "DPO"))
    assert (await client.get_job("DPO", "j")).job_id == "j"
    assert sleep.delays == [3.0, 0.25]


async def test_retry_after_http_date_is_honoured(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/dpoJobs/j"
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    mocked.get(url, status=503, headers={"Retry-After": when}, body="")
    mocked.get(url, payload=job("j", "DPO"))
    await client.get_job("DPO", "j")
    [delay] = sleep.delays
    assert 25 <= delay <= 31


async def test_backoff_grows_and_gives_up_after_max_attempts(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/supervisedFineTuningJobs/j"
    for _ in range(4):
        mocked.get(url, status=500, payload={"code": 13, "message": "boom", "details": []})
    with pytest.raises(Transient) as info:
        await client.get_job("SFT", "j")
    assert info.value.status == 500
    assert info.value.message == "boom"
    assert len(calls(mocked, "GET", url)) == 4
    assert len(sleep.delays) == 3
    for attempt, delay in enumerate(sleep.delays, start=1):
        ceiling = min(8.0, 0.5 * 2 ** (attempt - 1))
        assert ceiling / 2 <= delay <= ceiling


async def test_network_errors_and_timeouts_are_retried(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/supervisedFineTuningJobs/j"
    mocked.get(url, exception=aiohttp.ClientConnectionError("refused"))
    mocked.get(url, exception=TimeoutError())
    mocked.get(url, payload=job("j"))
    assert (await client.get_job("SFT", "j")).job_id == "j"
    assert len(sleep.delays) == 2


async def test_create_409_is_not_retried(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/supervisedFineTuningJobs?supervisedFineTuningJobId=j"
    mocked.post(url, status=409, payload={"code": 6, "message": "exists", "details": []})
    mocked.post(url, payload=job("j"))
    with pytest.raises(AlreadyExists):
        await client.create_job("SFT", "j", {"dataset": "d"})
    assert len(calls(mocked, "POST", url)) == 1
    assert sleep.delays == []


async def test_create_400_is_rejected_with_fireworks_message(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/reinforcementFineTuningJobs?reinforcementFineTuningJobId=j"
    mocked.post(url, status=400, payload={"error": {"message": "evaluator is required"}})
    with pytest.raises(Rejected) as info:
        await client.create_job("RFT", "j", {"dataset": "d"})
    assert (info.value.status, info.value.message) == (400, "evaluator is required")
    assert sleep.delays == []


@pytest.mark.parametrize("status", [429, 400])
async def test_quota_error_is_detected_and_not_retried(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep, status: int
) -> None:
    url = f"{ROOT}/supervisedFineTuningJobs?supervisedFineTuningJobId=j"
    text = f"training-h200-count for account {ACCOUNT}, in use: 8, quota: 8"
    mocked.post(url, status=status, payload={"code": 8, "message": text, "details": []})
    with pytest.raises(QuotaExhausted) as info:
        await client.create_job("SFT", "j", {"dataset": "d"})
    assert (info.value.in_use, info.value.quota, info.value.status) == (8, 8, status)
    assert sleep.delays == []


async def test_unauthenticated(client: FireworksClient, mocked: aioresponses) -> None:
    mocked.get(f"{ROOT}/quotas/q", status=401, payload={"code": 16, "message": "bad key"})
    with pytest.raises(Unauthenticated) as info:
        await client.get_quota("q")
    assert isinstance(info.value, Rejected)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"code": 5, "message": "job not found", "details": []}', "job not found"),
        ('{"error": {"message": "nested", "code": "x"}}', "nested"),
        ('{"error": "flat string"}', "flat string"),
        ('"bare json string"', "bare json string"),
        ("upstream connect error", "upstream connect error"),
        ("", "HTTP 404"),
    ],
)
def test_error_body_variants(body: str, message: str) -> None:
    error = classify(404, body, {})
    assert isinstance(error, NotFound)
    assert error.message == message


@pytest.mark.parametrize(
    ("status", "text", "expected"),
    [
        (429, "in use: 8, quota: 8", QuotaExhausted),
        (400, "In Use: 12,  Quota: 8", QuotaExhausted),
        (429, "in use: 4, quota: 8", Transient),
        (429, "in use: 0, quota: 0", Transient),
        (400, "in use: 0, quota: 0", Rejected),
        (429, "rate limited", Transient),
        (403, "in use: 8, quota: 8", Rejected),
        (409, "exists", AlreadyExists),
        (501, "not implemented", Rejected),
        (502, "bad gateway", Transient),
        (408, "timeout", Transient),
    ],
)
def test_classify(status: int, text: str, expected: type[FireworksError]) -> None:
    error = classify(status, json.dumps({"message": text}), {})
    assert type(error) is expected
    assert error.status == status


@pytest.mark.parametrize(
    ("requested", "expected"), [(None, Transient), (4, Transient), (5, QuotaExhausted)]
)
def test_quota_partial_fit_needs_requested_gpus(
    requested: int | None, expected: type[FireworksError]
) -> None:
    body = json.dumps({"message": "training-h200-count for account a, in use: 4, quota: 8"})
    assert type(classify(429, body, {}, requested=requested)) is expected


async def test_create_quota_partial_fit_is_quota_exhausted(
    client: FireworksClient, mocked: aioresponses, sleep: RecordingSleep
) -> None:
    url = f"{ROOT}/supervisedFineTuningJobs?supervisedFineTuningJobId=j"
    text = "training-h200-count for account a, in use: 12, quota: 16"
    mocked.post(url, status=429, payload={"code": 8, "message": text, "details": []})
    with pytest.raises(QuotaExhausted) as info:
        await client.create_job("SFT", "j", {"dataset": "d"}, gpu_count=8)
    assert (info.value.in_use, info.value.quota) == (12, 16)
    assert sleep.delays == []


@pytest.mark.parametrize("status", [404, 501])
async def test_cancel_falls_back_to_delete(
    client: FireworksClient, mocked: aioresponses, status: int
) -> None:
    cancel = f"{ROOT}/supervisedFineTuningJobs/j:cancel"
    delete = f"{ROOT}/supervisedFineTuningJobs/j"
    mocked.post(cancel, status=status, body="Not Found")
    mocked.delete(delete, payload={})
    await client.cancel_job("SFT", "j")
    assert calls(mocked, "POST", cancel)[0].kwargs["data"] == b"{}"
    assert len(calls(mocked, "DELETE", delete)) == 1


async def test_cancel_uses_verb_when_served(client: FireworksClient, mocked: aioresponses) -> None:
    cancel = f"{ROOT}/reinforcementFineTuningJobs/j:cancel"
    mocked.post(cancel, payload={})
    await client.cancel_job("RFT", "j")
    assert len(calls(mocked, "POST", cancel)) == 1
    assert not any(method == "DELETE" for method, _ in mocked.requests)


async def test_cancel_of_missing_job_raises_not_found(
    client: FireworksClient, mocked: aioresponses
) -> None:
    mocked.post(f"{ROOT}/dpoJobs/j:cancel", status=404, payload={"message": "nope"})
    mocked.delete(f"{ROOT}/dpoJobs/j", status=404, payload={"message": "job not found"})
    with pytest.raises(NotFound, match="job not found"):
        await client.cancel_job("DPO", "j")


async def test_cancel_of_terminal_job_does_not_delete(
    client: FireworksClient, mocked: aioresponses
) -> None:
    mocked.post(f"{ROOT}/dpoJobs/j:cancel", status=400, payload={"message": "is COMPLETED"})
    with pytest.raises(Rejected):
        await client.cancel_job("DPO", "j")
    assert not any(method == "DELETE" for method, _ in mocked.requests)


async def test_api_key_never_in_logs_reprs_or_errors(
    client: FireworksClient, mocked: aioresponses
) -> None:
    url = f"{ROOT}/supervisedFineTuningJobs/j"
    mocked.get(url, exception=aiohttp.ClientConnectionError(f"boom {BASE}"))
    for _ in range(3):
        mocked.get(url, status=503, payload={"message": "unavailable"})
    with capture_logs() as logs, pytest.raises(Transient) as info:
        await client.get_job("SFT", "j")
    assert len(logs) == 3
    assert all(entry["event"] == "fireworks.retry" for entry in logs)
    assert {"method", "path", "status", "attempt"} <= set(logs[0])
    haystack = " ".join(
        [repr(logs), str(info.value), repr(info.value), repr(client), repr(vars(info.value))]
    )
    assert KEY not in haystack
    assert not re.search(r"SECRET", haystack)
