"""A queued job's ETA (an ISO time from the API) in words: `09:40 UTC (in 1h 20m)`."""

from __future__ import annotations

from datetime import UTC, datetime


def eta_words(value: object, now: datetime | None = None) -> str:
    if not isinstance(value, str) or not value:
        return ""
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    minutes = max(0, round((at - now).total_seconds() / 60))
    when = at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if minutes == 0:
        return f"{when} (now)"
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    span = f"{days}d {hours}h" if days else f"{hours}h {mins}m" if hours else f"{mins}m"
    return f"{when} (in {span})"
