"""One `jobs` column list (projections.writers.JOB_COLUMNS): every statement that writes a
whole `jobs` row names exactly those columns, in that order, and `job_columns` gives one
value for each but `last_position`."""

from __future__ import annotations

import re

import pytest

from events.domain.job import JobState
from projections.sql import QUERIES
from projections.writers import JOB_COLUMNS, job_columns

_INSERT = re.compile(r"INSERT INTO jobs \(([^)]*)\)")


@pytest.mark.parametrize("query", ["upsert_job", "record_new_jobs"])
def test_every_whole_row_writer_names_the_one_column_list(query: str) -> None:
    (listed,) = _INSERT.findall(QUERIES[query])
    assert tuple(c.strip() for c in listed.split(",")) == JOB_COLUMNS


def test_job_columns_follow_the_list() -> None:
    state = JobState(job_id="j", status="QUEUED", user_id="u", fireworks_payload={"a": 1})
    row = dict(zip(JOB_COLUMNS, job_columns(state), strict=False))
    assert len(job_columns(state)) == len(JOB_COLUMNS) - 1  # all but last_position
    assert (row["id"], row["state"], row["user_id"]) == ("j", "QUEUED", "u")
    assert row["fireworks_payload"] == '{"a":1}' and row["version"] == 0
