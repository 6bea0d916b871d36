"""The composition root: settings in, a Litestar app out. The lifespan builds the database
pool (migrated), the log watcher, one HTTP session, the Fireworks client (or the in-process
simulator), the capacity reader and the admission loop, and tears them down in reverse."""

from __future__ import annotations

import gc
import logging
import sys
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AsyncExitStack,
    asynccontextmanager,
    contextmanager,
)
from typing import Any

import aiohttp
import anyio.to_thread
import asyncpg
import structlog
from litestar import Litestar, Router
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.exceptions import LitestarDeprecationWarning

from events.domain.scheduling import UsageLedger
from events.store.tail import LogWatcher
from events.store.waker import Waker
from service.admission.faults import fault_checkpoint_from_env
from service.admission.loop import AdmissionLoop
from service.api.admin import ADMIN_ROUTES
from service.api.allow import complete_allow
from service.api.auth import (
    BEARER_SCHEME,
    CALLER,
    SECURITY,
    admin_only,
    authenticate_request,
)
from service.api.batch import BATCH_ROUTES
from service.api.common import RUNTIME
from service.api.docs import docs_routers, openapi_config
from service.api.errors import EXCEPTION_HANDLERS
from service.api.fast_submit import FastSubmit
from service.api.jobs import JOB_ROUTES
from service.api.openapi_exact import use_exact_document
from service.api.ops import OPS_ROUTES
from service.api.requeue import REQUEUE_ROUTES
from service.api.runtime import Runtime
from service.api.secrets import SECRETS_ROUTES
from service.api.usage import USAGE_ROUTES
from service.api.webhooks import WEBHOOK_ROUTES
from service.capacity import CapacityReader
from service.database import create_pool, describe_url, migrate, resolve_database_url
from service.directory import KeyLookup
from service.eta import EtaForecaster
from service.fireworks import FireworksClient
from service.logging import RequestContext, configure_logging, log_level
from service.secrets.keys import keyring_of
from service.secrets.vault import Vault
from service.settings import Settings
from service.submissions import Submitter
from service.ui import template_config, ui_routers
from service.webhooks.deliverer import WebhookDeliverer

log = structlog.get_logger(__name__)

LEGACY_PREFIX = "/functions/v1/jobs-api"  # where clients of the Supabase service call
# The alias serves the same routes again; the OpenAPI document lists it once, in its
# description (service.api.docs), not each route twice.
ALIAS: dict[str, Any] = {"include_in_schema": False}
SIMULATOR_KEY = "sim-key"
GIL_SWITCH_S = 0.001  # see lifespan_for


def history_routes() -> list[Any]:
    with _tolerating_litestar_deprecations():
        from service.api.history import history_routes as routes  # noqa: PLC0415

    return list(routes)


@contextmanager
def _tolerating_litestar_deprecations() -> Iterator[None]:
    """Litestar 2.2x warns about handler styles it will drop in 3.0 (inferred dependencies,
    `Parameter(header=...)`); ftq's own modules use the new style, the history module may
    not yet, and a warning must not stop the app."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=LitestarDeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"litestar\..*")
        warnings.filterwarnings("ignore", message=r"Deprecated 'header' parameter")
        yield


async def _admission_loop(runtime: Runtime) -> AdmissionLoop:
    loop = AdmissionLoop(
        runtime.pool,
        runtime.client,
        runtime.settings,
        runtime.watcher,
        capacity=runtime.capacity,
        checkpoint=fault_checkpoint_from_env(),  # None unless an e2e test asks for a crash
        dsn=runtime.database_url,  # the leader's own connection, also for the embedded server
        vault=runtime.vault,
    )
    await loop.start()
    return loop


def _webhook_deliverer(runtime: Runtime) -> WebhookDeliverer:
    settings = runtime.settings
    url = runtime.database_url
    keyring = runtime.vault.keyring

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(url)

    return WebhookDeliverer(
        runtime.pool,
        connect,
        [master.key for master in (keyring.current, *keyring.older)],
        runtime.watcher,
        max_attempts=settings.webhook_max_attempts,
        allow_private=settings.webhook_allow_private,
    )


def _wake_failed(exc: BaseException) -> None:
    log.warning("log.wake_failed", error=str(exc))


def _ledger(runtime: Runtime) -> UsageLedger | None:
    """Fair share's usage for the ETA forecast: the scheduling history's (the loop's)."""
    from service.api.views import history_of  # noqa: PLC0415

    return history_of(runtime).ledger


async def _eta_forecaster(runtime: Runtime) -> EtaForecaster:
    """Queued jobs' ETAs, rebuilt in the background (service.eta), in every process."""
    eta = EtaForecaster(runtime.pool, runtime.settings, runtime.capacity, runtime.watcher,
                        ledger=lambda: _ledger(runtime))  # fmt: skip
    await eta.start()
    return eta


def lifespan_for(
    settings: Settings, run_scheduler: bool, vault: Vault | None = None
) -> Callable[[Litestar], AbstractAsyncContextManager[None]]:
    vault = vault or Vault(keyring_of(settings))

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            url = await anyio.to_thread.run_sync(
                resolve_database_url, settings.database_url, settings.data_dir / "pg"
            )
            pool = await create_pool(url)
            stack.push_async_callback(pool.close)
            embedded = None if settings.database_url else str(settings.data_dir / "pg")
            log.info("database.opened", database=describe_url(url), embedded_in=embedded)
            await migrate(pool)
            await vault.check_at_start(pool)  # one clear error if the master key is not theirs
            waker = Waker(pool, on_error=_wake_failed)
            stack.push_async_callback(waker.close)
            submitter, keys = Submitter(pool, waker, vault=vault), KeyLookup(pool, url)
            stack.push_async_callback(submitter.close)  # before the waker's close: LIFO
            await keys.start()
            stack.push_async_callback(keys.close)
            watcher = LogWatcher(url)
            await watcher.start()
            stack.push_async_callback(watcher.stop)
            session = aiohttp.ClientSession()
            stack.push_async_callback(session.close)
            simulator = None
            if settings.uses_simulator:
                from service.fireworks.simulator import run_simulator  # noqa: PLC0415

                simulator = await run_simulator(
                    "127.0.0.1",
                    0,
                    quota=settings.fireworks_gpu_quota or 8,
                    account_id=settings.fireworks_account_id,
                    api_key=settings.fireworks_api_key or SIMULATOR_KEY,
                )
                stack.push_async_callback(simulator.stop)
                base_url, api_key = simulator.base_url, settings.fireworks_api_key or SIMULATOR_KEY
            else:
                settings.check_production()
                assert settings.fireworks_api_key is not None
                base_url, api_key = settings.fireworks_base_url, settings.fireworks_api_key
            client = FireworksClient(session, base_url, api_key, settings.fireworks_account_id)
            runtime = Runtime(
                settings=settings,
                database_url=url,
                pool=pool,
                waker=waker,
                submitter=submitter,
                keys=keys,
                watcher=watcher,
                session=session,
                client=client,
                capacity=CapacityReader(client, settings),
                simulator=simulator,
                vault=vault,
            )
            stack.push_async_callback(runtime.capacity.close)
            runtime.eta = await _eta_forecaster(runtime)
            stack.push_async_callback(runtime.eta.stop)
            if run_scheduler:
                runtime.loop = await _admission_loop(runtime)
                stack.push_async_callback(runtime.loop.stop)
            if run_scheduler:
                deliverer = _webhook_deliverer(runtime)
                await deliverer.start()
                stack.push_async_callback(deliverer.stop)
            app.state.runtime = runtime
            stack.callback(app.state.pop, "runtime", None)
            log.info("app.started", simulator=simulator is not None, scheduler=run_scheduler)
            # What exists now (modules, the app, its routes) lives as long as the process:
            # keep the collector's full passes from walking it again and again (those pauses
            # were most of POST /jobs' p99 under load; bench/http_api.py).
            gc.freeze()
            # The queue-position plan is made in a thread (service.api.views); while it runs,
            # the event loop gets the GIL back after at most this long instead of Python's
            # 5 ms, once per wake-up. 100k queued, POST /jobs paced: p99 115-123 ms -> 38 ms.
            stack.callback(sys.setswitchinterval, sys.getswitchinterval())
            sys.setswitchinterval(GIL_SWITCH_S)
            yield

    return lifespan


def create_app(
    settings: Settings, *, run_scheduler: bool = True, fast_submit: bool = True
) -> Litestar:
    """The ftq HTTP app; nothing connects until the lifespan starts. `fast_submit`: the plain
    `POST /jobs` answered in front of Litestar (service.api.fast_submit; off, for the tests
    that compare both paths)."""
    settings.check_production()  # refuse at once rather than at the first request
    configure_logging(settings)
    vault = Vault(keyring_of(settings))  # a malformed FTQ_SECRET_KEY refuses here
    history = history_routes()
    deps = {**CALLER, **RUNTIME}
    guarded: dict[str, Any] = {"before_request": authenticate_request, "security": SECURITY}
    routers = [
        Router("/", route_handlers=[*JOB_ROUTES, *BATCH_ROUTES], dependencies=deps, **guarded),
        Router("/", route_handlers=USAGE_ROUTES, dependencies=deps, **guarded),
        Router("/", route_handlers=SECRETS_ROUTES, dependencies=deps, **guarded),
        Router("/", route_handlers=WEBHOOK_ROUTES, dependencies=deps, **guarded),
        Router(
            LEGACY_PREFIX,
            route_handlers=[*JOB_ROUTES, *BATCH_ROUTES],
            dependencies=deps,
            **guarded,
            **ALIAS,
        ),
        Router("/", route_handlers=REQUEUE_ROUTES, dependencies=deps, **guarded),
        Router(LEGACY_PREFIX, route_handlers=REQUEUE_ROUTES, dependencies=deps, **guarded, **ALIAS),
        Router(
            "/admin",
            route_handlers=ADMIN_ROUTES,
            dependencies=deps,
            guards=[admin_only],  # authenticates first: 401 before 403
            security=SECURITY,
        ),
        Router("/", route_handlers=OPS_ROUTES, dependencies=deps),
        *docs_routers(),
        *ui_routers(),
    ]
    if history:
        # The history handlers declare their own `caller`/`runtime` dependencies; Litestar
        # refuses the same provider at two layers, so their routers carry none.
        routers += [
            Router("/", route_handlers=history, **guarded),
            Router(LEGACY_PREFIX, route_handlers=history, **guarded, **ALIAS),
        ]
    with _tolerating_litestar_deprecations():
        app = Litestar(
            route_handlers=routers,
            exception_handlers=EXCEPTION_HANDLERS,
            before_send=[complete_allow],
            lifespan=[lifespan_for(settings, run_scheduler, vault)],
            request_max_body_size=settings.max_body_bytes,
            openapi_config=openapi_config(BEARER_SCHEME, alias=LEGACY_PREFIX),
            template_config=template_config(),
            logging_config=None,
        )
    use_exact_document(app.plugins.get(OpenAPIPlugin))
    handler = app.asgi_handler
    if fast_submit:
        paths = frozenset({"/jobs", f"{LEGACY_PREFIX}/jobs"})
        handler = FastSubmit(app, handler, paths, settings.max_body_bytes)
    app.asgi_handler = RequestContext(handler, access_log=log_level(settings) <= logging.INFO)
    return app
