"""The parts of Fireworks resources that ftq reads; every field is optional on the wire."""

from __future__ import annotations

import msgspec


class JobStatus(msgspec.Struct, omit_defaults=True):
    """google.rpc-style status: `code` is a string enum such as OK or INTERNAL."""

    code: str | None = None
    message: str | None = None


class JobProgress(msgspec.Struct, omit_defaults=True):
    """Training progress; ftq only needs the percentage."""

    percent: float | None = None


class Money(msgspec.Struct, rename="camel", omit_defaults=True):
    """google.type.Money: `units` (int64, a JSON string) plus `nanos` (1e-9 units)."""

    currency_code: str | None = None
    units: str | int | None = None
    nanos: int | None = None

    @property
    def amount(self) -> float | None:
        try:
            units = int(self.units or 0)
        except ValueError:
            return None
        return units + (self.nanos or 0) / 1e9


class FireworksJob(msgspec.Struct, rename="camel", omit_defaults=True):
    """An SFT, DPO or RFT job as returned by create/get/list."""

    name: str | None = None
    display_name: str | None = None
    state: str | None = None
    status: JobStatus | None = None
    create_time: str | None = None
    update_time: str | None = None
    completed_time: str | None = None
    job_progress: JobProgress | None = None
    # Fireworks' own accounting, when it fills it in (RFT: once the job ended; SFT: a cost).
    accelerator_seconds: dict[str, str | int | float] | None = None
    estimated_cost: Money | None = None

    @property
    def job_id(self) -> str | None:
        """Last segment of `name`, i.e. the id chosen at create time."""
        return self.name.rsplit("/", 1)[-1] if self.name else None

    @property
    def percent(self) -> float | None:
        """`jobProgress.percent`, or None when Fireworks did not report it (e.g. DPO)."""
        return self.job_progress.percent if self.job_progress else None

    @property
    def accelerator_total(self) -> float | None:
        """The sum of `acceleratorSeconds` over accelerator types (None: not reported)."""
        if not self.accelerator_seconds:
            return None
        total = 0.0
        for value in self.accelerator_seconds.values():
            try:
                total += float(value)
            except ValueError:
                return None
        return total

    @property
    def cost(self) -> float | None:
        """`estimatedCost` as a number (None: not reported or unreadable)."""
        return self.estimated_cost.amount if self.estimated_cost else None

    @property
    def status_message(self) -> str | None:
        """Fireworks' failure text, if any."""
        return self.status.message if self.status else None


class Quota(msgspec.Struct, rename="camel", omit_defaults=True):
    """An account quota; `value` is the enforced limit, int64 values arrive as strings."""

    name: str | None = None
    value: str | None = None
    max_value: str | None = None
    usage: float | None = None
    update_time: str | None = None

    @property
    def quota_id(self) -> str | None:
        """Last segment of `name`, e.g. `training-h200-count`."""
        return self.name.rsplit("/", 1)[-1] if self.name else None

    @property
    def limit(self) -> int:
        """The enforced limit as an int (0 when absent or unparsable)."""
        try:
            return int(self.value or 0)
        except ValueError:
            return 0
