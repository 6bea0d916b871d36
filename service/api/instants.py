"""The times `GET /usage` and `GET /usage/hourly` take (`from`, `to`): a date (YYYY-MM-DD) or
a date and time (RFC 3339, the offset optional: UTC when none is given).

`INSTANT` is the exact form, calendar included (no 31 April, 29 February only in a leap
year), in the OpenAPI document too: every string matching it is a time the server takes,
every other is refused (400)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

_YEAR: Final = "(?:000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})"
_LEAP: Final = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][48]|[13579][26]|[2468]0)00)"
_MONTH_DAY: Final = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])"
    "|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
_DATE: Final = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP}-02-29)"
_TIME: Final = "[Tt ](?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\\.[0-9]{1,9})?)?"
_OFFSET: Final = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])?"
INSTANT: Final = f"^{_DATE}(?:{_TIME}{_OFFSET})?$"
MAX_INSTANT: Final = 64
_PARTS: Final = re.compile(
    "(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2})"
    "(?:.(?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\\.(?P<f>[0-9]+))?)?"
    "(?P<z>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))?)?"
)
_CHECK: Final = re.compile(INSTANT)
_LOWEST: Final = datetime.min.replace(tzinfo=UTC)
_HIGHEST: Final = datetime.max.replace(tzinfo=UTC)


def parse_instant(text: str) -> datetime | None:
    """`text` as an aware UTC time (clamped to what Python can hold: 0001-01-01T00:00+01:00
    is the first instant), or None when it is not of the form `INSTANT`."""
    if not _CHECK.fullmatch(text) or (parts := _PARTS.fullmatch(text)) is None:
        return None
    fraction = (parts["f"] or "0")[:6].ljust(6, "0")
    local = datetime(
        int(parts["y"]),
        int(parts["m"]),
        int(parts["d"]),
        int(parts["H"] or 0),
        int(parts["M"] or 0),
        int(parts["S"] or 0),
        int(fraction),
    )
    offset = timedelta()
    if parts["sign"]:
        offset = timedelta(hours=int(parts["oh"]), minutes=int(parts["om"]))
        offset = -offset if parts["sign"] == "-" else offset
    try:
        return (local - offset).replace(tzinfo=UTC)
    except OverflowError:
        return _LOWEST if offset > timedelta() else _HIGHEST
