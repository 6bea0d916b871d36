"""Build event-log histories in memory for replay and audit tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from events.domain.codec import AnyEvent, encode, event_type, schema_version
from events.domain.directory_events import (
    SCHEDULER_STREAM,
    PolicyInForce,
    UserAdded,
    UserCapSet,
    user_stream,
)
from events.domain.job_events import (
    AdmissionReason,
    AdmissionStarted,
    Admitted,
    Cancelled,
    FireworksStateObserved,
    JobSubmitted,
    ReturnedToQueue,
    Succeeded,
)
from events.store.log import RecordedEvent

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def row(
    position: int, stream: str, version: int, event: AnyEvent, *, type_: str | None = None
) -> RecordedEvent:
    type_ = type_ or event_type(event)
    return RecordedEvent(
        position=position,
        transaction_id=position,
        stream_id=stream,
        stream_version=version,
        type=type_,
        schema_version=schema_version(type_),
        data=encode(event),
        metadata={},
        recorded_at=event.at,
    )


def renumbered(rows: list[RecordedEvent]) -> list[RecordedEvent]:
    """The same events with positions 1..n in list order (stream versions untouched)."""
    return [msgspec.structs.replace(r, position=i, transaction_id=i) for i, r in enumerate(rows, 1)]


class History:
    """Appends events with positions 1, 2, ... and per-stream versions; a clock ticking 1 s."""

    def __init__(self) -> None:
        self.rows: list[RecordedEvent] = []
        self.versions: dict[str, int] = {}
        self.clock = T0
        self.users: dict[str, str] = {}  # email -> user id

    def now(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def append(self, stream: str, event: AnyEvent) -> int:
        version = self.versions.get(stream, 0) + 1
        self.versions[stream] = version
        self.rows.append(row(len(self.rows) + 1, stream, version, event))
        return len(self.rows)

    def user(self, email: str, cap: int | None = None) -> str:
        user_id = f"u-{email.split('@', maxsplit=1)[0]}"
        self.users[email] = user_id
        self.append(
            user_stream(email),
            UserAdded(at=self.now(), user_id=user_id, email=email, role="member"),
        )
        if cap is not None:
            self.set_cap(email, cap)
        return user_id

    def set_cap(
        self, email: str, cap: int | None, size_class: str = "small", unlimited: bool = False
    ) -> int:
        event = UserCapSet(
            at=self.now(),
            user_id=self.users[email],
            cap=cap,
            size_class=size_class,  # type: ignore[arg-type]
            unlimited=unlimited,
        )
        return self.append(user_stream(email), event)

    def policy(self, name: str, **settings: Any) -> int:
        """A leader records the policy in force (and its settings)."""
        event = PolicyInForce(at=self.now(), policy=name, settings=settings)
        return self.append(SCHEDULER_STREAM, event)

    def submit(
        self,
        job_id: str,
        email: str,
        gpus: int = 4,
        gpu_type: str = "h200",
        priority: int = 50,
        after: tuple[str, ...] = (),
    ) -> int:
        if email not in self.users:
            self.user(email)
        event = JobSubmitted(
            at=self.now(),
            job_id=job_id,
            user_id=self.users[email],
            user_email=email,
            kind="SFT",
            display_name=f"job {job_id}",
            gpu_count=gpus,
            fireworks_payload={"baseModel": "m", "secret": "do-not-show"},
            after=after,
            gpu_type=gpu_type,
            priority=priority,
        )
        return self.append(job_id, event)

    def admit(
        self,
        job_id: str,
        *,
        available: int,
        quota: int = 16,
        in_use: int = 0,
        policy: str = "strict-fifo",
        fireworks_id: str | None = None,
        **evidence: Any,
    ) -> int:
        reason = AdmissionReason(
            policy=policy,
            quota=quota,
            in_use=in_use,
            available=available,
            queue_position=1,
            **evidence,
        )
        fw = fireworks_id or f"ftq-{job_id}"
        event = AdmissionStarted(
            at=self.now(),
            fireworks_job_id=fw,
            fireworks_job_name=f"accounts/a/supervisedFineTuningJobs/{fw}",
            reason=reason,
        )
        return self.append(job_id, event)

    def confirm(self, job_id: str) -> int:
        return self.append(job_id, Admitted(at=self.now(), fireworks_state="JOB_STATE_CREATING"))

    def observe(self, job_id: str, progress: float) -> int:
        event = FireworksStateObserved(
            at=self.now(), fireworks_state="JOB_STATE_RUNNING", progress=progress
        )
        return self.append(job_id, event)

    def succeed(self, job_id: str) -> int:
        return self.append(job_id, Succeeded(at=self.now(), fireworks_state="JOB_STATE_COMPLETED"))

    def requeue(self, job_id: str) -> int:
        return self.append(job_id, ReturnedToQueue(at=self.now(), message="quota"))

    def cancel(self, job_id: str) -> int:
        return self.append(job_id, Cancelled(at=self.now(), reason="cancelled by a@x", by="a@x"))
