"""schemathesis with every check and the stateful phase: sequences of calls chained by the
document's links (POST /jobs → GET/DELETE /jobs/{id}, its events, requeue), as an admin
and as a member, each answer checked against the document (issue 13 item 16). Bounded to
keep it to a minute or two."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis.config._checks import (
    NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES,
    NegativeDataRejectionConfig,
)
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from service.api.instants import parse_instant
from service.api.intake import IDEMPOTENCY_KEY, MAX_IDEMPOTENCY_KEY
from service.api.usage import MAX_HOURS
from service.app import create_app
from service.settings import Settings
from service.usage import EPOCH
from tests.api.conftest import make_user

schemathesis.checks.load_all_checks()  # registered lazily otherwise
ALL_CHECKS = schemathesis.checks.CHECKS.get_all()  # `--checks all`
# The one check that does not apply: `DELETE /jobs/{id}` is the contract's cancel (the old
# service's clients call it so); the job stays, readable as CANCELLED, so "deleted resource
# still available" is the documented behaviour, not a defect.
NOT_THIS_API = [schemathesis.checks.use_after_free]
STATEFUL = settings(
    max_examples=40,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
    # No replay to shrink a failure: the server's state has moved on by then, so a replay
    # takes other transitions and Hypothesis reports flakiness instead of the failure.
    phases=(Phase.explicit, Phase.generate),
    report_multiple_bugs=False,
)

PER_OPERATION = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


def within_window(case: Any) -> None:
    """`to` must not precede `from`, and `/usage/hourly` takes at most MAX_HOURS: rules
    between two parameters, which no schema can say (said in the document's descriptions,
    tested in tests/api/test_usage.py). A valid query breaking them gets one time for both."""
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    if not valid or case.operation.label not in ("GET /usage", "GET /usage/hourly"):
        return
    query = case.query or {}
    start_text, stop_text = query.get("from"), query.get("to")
    given = start_text if isinstance(start_text, str) else stop_text
    if not isinstance(given, str):
        return
    hourly = case.operation.label == "GET /usage/hourly"
    now = datetime.now(UTC)
    start = parse_instant(start_text) if isinstance(start_text, str) else None
    stop = parse_instant(stop_text) if isinstance(stop_text, str) else None
    start = start or (now - timedelta(hours=24) if hourly else EPOCH)
    stop = stop or now
    if stop < start or (hourly and stop - start > timedelta(hours=MAX_HOURS)):
        query["from"] = query["to"] = given


def without_unknown_jobs(case: Any) -> None:
    """`after` must name the caller's existing jobs, which no schema can say: a valid body's
    random job ids would be refused (400) for a reason outside the document, so they are
    left out of valid bodies (`after` has its own tests, tests/api/test_pipelines.py)."""
    valid = case.meta is not None and case.meta.generation.mode.is_positive
    if valid and isinstance(case.body, dict) and case.operation.label == "POST /jobs":
        case.body.pop("after", None)
    # The same for `user` of POST /webhooks: an existing user's email or id.
    if valid and isinstance(case.body, dict) and case.operation.label == "POST /webhooks":
        case.body.pop("user", None)


FRESH = itertools.count()


def unique_key(key: Any) -> Any:
    """A valid idempotency key made unique (still valid): a key made again in a later
    example would answer 200 (or 409) where the first got 201, so examples replay alike."""
    if isinstance(key, str) and re.fullmatch(IDEMPOTENCY_KEY, key):
        return f"{next(FRESH)}-{key}"[:MAX_IDEMPOTENCY_KEY]
    return key


def batch_as_documented(case: Any) -> None:
    """POST /jobs/batch: valid items as `without_unknown_jobs` makes valid POST /jobs
    bodies, keys unique; invalid data is sent with `atomic=true`, where (as documented) a
    bad item refuses the batch; without it the item's error is its result in a 200."""
    if case.operation.label != "POST /jobs/batch" or case.meta is None:
        return
    if not case.meta.generation.mode.is_positive:
        query = case.query if isinstance(case.query, dict) else {}
        if query.get("atomic") in (None, True, False, "true", "false"):
            case.query = {**query, "atomic": "true"}
        return
    for item in case.body if isinstance(case.body, list) else []:
        if isinstance(item, dict):
            item.pop("after", None)
            if "idempotency_key" in item:
                item["idempotency_key"] = unique_key(item["idempotency_key"])


@pytest.fixture
async def keys(pool: asyncpg.Pool) -> dict[str, str]:
    _, admin = await make_user(pool, "state-admin@example.com", "admin")
    _, member = await make_user(pool, "state-member@example.com", "member")
    return {"admin": admin, "member": member}


@pytest.fixture
def stateful_app(api_settings: Settings, keys: dict[str, str]) -> Iterator[Litestar]:
    unlimited = msgspec.structs.replace(
        api_settings,
        max_queued_per_user=0,
        submit_rate_per_minute=0,
        # A webhook URL's host must resolve to a public address, which depends on the DNS,
        # not on the request: the document says the URL's form, and that is what is checked.
        webhook_allow_private=True,
    )
    app = create_app(unlimited, run_scheduler=False)  # no 429s that depend on earlier runs
    yield app
    schemathesis_asgi.shutdown_lifespans()  # before the test database is dropped


@pytest.mark.parametrize("role", ["admin", "member"])
def test_stateful_sequences_pass_every_check(
    stateful_app: Litestar, keys: dict[str, str], role: str
) -> None:
    loaded = schemathesis.openapi.from_asgi("/schema/openapi.json", stateful_app)
    # The job's life, from its POST: what each sequence creates is all it reads, so a
    # sequence's transitions never depend on what earlier ones left (GET /jobs lists those).
    schema: Any = (
        loaded.include(path_regex=r"^/jobs")
        .exclude(path_regex=r"stream$|^/jobs/batch$")
        .exclude(path="/jobs", method="GET")
    )
    machine: Any = schema.as_state_machine()
    headers = {"Authorization": f"Bearer {keys[role]}"}

    fresh = itertools.count()

    class Sequences(machine):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def before_call(self, case: Any) -> None:
            # A valid Idempotency-Key made again in a later run would answer 200 (or 409)
            # where the first run got 201: made unique, still valid, so runs replay alike.
            key = (case.headers or {}).get("Idempotency-Key")
            if isinstance(key, str) and re.fullmatch(IDEMPOTENCY_KEY, key):
                case.headers["Idempotency-Key"] = f"{next(fresh)}-{key}"[:MAX_IDEMPOTENCY_KEY]
            without_unknown_jobs(case)

        def validate_response(self, response: Any, case: Any, *_: Any, **kwargs: Any) -> None:
            case.validate_response(
                response,
                checks=ALL_CHECKS,
                excluded_checks=NOT_THIS_API,
                transport_kwargs=kwargs or None,
                recorder=self.recorder,
            )

    Sequences.run(settings=STATEFUL)


# Operations whose document is exact for every check, positive and negative data included:
# every operation but the two live history streams (SSE/NDJSON answers that never end by
# themselves; tests/api/test_history.py tests them).
EXACT = r"^/(?!.*stream$)"


def test_exact_operations_pass_every_check(stateful_app: Litestar, keys: dict[str, str]) -> None:
    loaded = schemathesis.openapi.from_asgi("/schema/openapi.json", stateful_app)
    # The key as the run's configured headers, as `--header` gives it: a negative case whose
    # only change is leaving the credentials out is then seen as valid once they are sent.
    headers = {"Authorization": f"Bearer {keys['admin']}"}
    loaded.config.update(headers=headers)
    # 413 is how a too-large batch (more than maxItems) is refused, as documented.
    loaded.config.checks.negative_data_rejection = NegativeDataRejectionConfig(
        expected_statuses=[*NEGATIVE_DATA_REJECTION_EXPECTED_STATUSES, "413"]
    )
    schema: Any = loaded.include(path_regex=EXACT)
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(PER_OPERATION)
            def check(case: Any) -> None:
                without_unknown_jobs(case)
                within_window(case)
                batch_as_documented(case)
                case.call_and_validate(headers=headers, checks=ALL_CHECKS)

            try:
                check()
            except Unsatisfiable:
                continue  # nothing to make invalid
            # Every operation's failure, then all of them (schemathesis raises a group of
            # several failures as a BaseExceptionGroup).
            except (Exception, BaseExceptionGroup) as exc:
                failures[f"{operation.label} ({mode.value})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
