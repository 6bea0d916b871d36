"""Property-based fuzzing of the app through its own OpenAPI document (schemathesis, in
process over ASGI, with an admin key): no 5xx, and every answer matches the documented
status codes, content types and schemas. Bounded: at most 100 positive and 100 negative
examples per operation (about 20 s in all)."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from litestar import Litestar
from schemathesis.generation import GenerationMode
from schemathesis.python import asgi as schemathesis_asgi

from service.app import create_app
from service.settings import Settings
from tests.api.conftest import make_user

MAX_EXAMPLES = 100


@pytest.fixture
async def admin_key(pool: asyncpg.Pool) -> str:
    _, key = await make_user(pool, "fuzz-admin@example.com", "admin")
    return key


@pytest.fixture
def fuzz_app(api_settings: Settings, admin_key: str) -> Iterator[Litestar]:
    app = create_app(api_settings, run_scheduler=False)
    yield app
    schemathesis_asgi.shutdown_lifespans()  # before the test database is dropped


def _fuzz(operation: Any, mode: GenerationMode, headers: dict[str, str]) -> Callable[[], None]:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def check(case: Any) -> None:
        case.call_and_validate(
            headers=headers,
            excluded_checks=[
                # A schema-valid payload can still be refused by the per-kind checks (400).
                schemathesis.checks.positive_data_acceptance,
                # Unknown query parameters are ignored (as HTTP APIs do), which this check
                # counts as "invalid data accepted"; the API's own rejections of bad data
                # are asserted one by one in test_jobs.py and test_admin_ops.py.
                schemathesis.checks.negative_data_rejection,
            ],
        )

    return check


@pytest.mark.timeout(900)  # every operation, many examples each: minutes on a loaded machine
def test_api_matches_its_openapi(fuzz_app: Litestar, admin_key: str) -> None:
    loaded = schemathesis.openapi.from_asgi("/schema/openapi.json", fuzz_app)
    # The live history streams never end by themselves; they have their own tests.
    schema: Any = loaded.exclude(path_regex=r"stream$")
    headers = {"Authorization": f"Bearer {admin_key}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    failures: dict[str, str] = {}
    for operation, mode in itertools.product(operations, GenerationMode):
        try:
            _fuzz(operation, mode, headers)()
        except Unsatisfiable:
            continue  # nothing to make invalid (no parameters, no body)
        except Exception as exc:  # collect every operation's failure, then report them all
            failures[f"{operation.label} ({mode})"] = f"{type(exc).__name__}: {exc}"[:3000]
    assert not failures, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
