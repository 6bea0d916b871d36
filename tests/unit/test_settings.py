"""Settings come from `.env` then the environment; bad values name their variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import ENV_NAMES, SettingsError, load_settings


def test_defaults_match_the_design() -> None:
    s = load_settings({}, None)
    assert (s.user_cap, s.reconcile_seconds, s.policy) == (1, 15.0, "strict-fifo")
    assert s.database_url is None and s.fireworks_gpu_quota is None
    assert s.fireworks_base_url == "https://api.fireworks.ai"


def test_environment_overrides_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("FTQ_USER_CAP=3\nFTQ_POLICY=backfill\nFTQ_DATA_DIR=~/ftq-data\n")
    s = load_settings({"FTQ_USER_CAP": "5"}, env_file)
    assert (s.user_cap, s.policy) == (5, "backfill")
    assert s.data_dir == Path("~/ftq-data").expanduser()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FTQ_USER_CAP", "many"),
        ("FTQ_USER_CAP", "-1"),
        ("FTQ_RECONCILE_SECONDS", "0"),
        ("FTQ_POLICY", "lottery"),
        ("FIREWORKS_GPU_QUOTA", "-4"),
        ("FTQ_WORKERS", "0"),
        ("FTQ_WORKERS", "two"),
    ],
)
def test_bad_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value}, None)


def test_production_without_a_key_refuses_naming_the_setting() -> None:
    with pytest.raises(SettingsError, match="FIREWORKS_API_KEY"):
        load_settings({}, None).check_production()
    load_settings({"FIREWORKS_BASE_URL": "simulator"}, None).check_production()
    load_settings({"FIREWORKS_API_KEY": "fw-secret"}, None).check_production()


def test_repr_never_shows_the_key() -> None:
    assert "fw-secret" not in repr(load_settings({"FIREWORKS_API_KEY": "fw-secret"}, None))


def test_env_example_mirrors_every_setting() -> None:
    text = (Path(__file__).parents[2] / ".env.example").read_text()
    names = {line.split("=", 1)[0] for line in text.splitlines() if "=" in line and line[0] != "#"}
    assert names == set(ENV_NAMES.values())


def test_scheduling_defaults_give_todays_behaviour() -> None:
    s = load_settings({}, None)
    limits, policy = s.limits(), s.scheduling_policy()
    assert (limits.big_job_gpus, limits.cap_small, limits.cap_big, limits.big_job_reserve) == (
        0,
        1,
        1,
        0,
    )
    assert (policy.name, policy.half_life_hours, policy.max_wait_hours) == ("strict-fifo", 168, 72)
    assert (policy.aging_hours, s.default_runtime_minutes, s.default_gpu_type) == (6, 120, "h200")


def test_the_old_services_rules_and_no_cap() -> None:
    s = load_settings(
        {
            "FTQ_BIG_JOB_GPUS": "8",
            "FTQ_USER_CAP_SMALL": "2",
            "FTQ_USER_CAP_BIG": "1",
            "FTQ_BIG_JOB_RESERVE": "4",
            "FTQ_POLICY": "fair-share",
        },
        None,
    )
    assert s.limits().cap_small == 2 and s.limits().big_job_reserve == 4
    assert s.policy == "fair-share"
    unlimited = load_settings({"FTQ_USER_CAP": "none", "FTQ_USER_CAP_BIG": "None"}, None)
    assert unlimited.limits().cap_small is None and unlimited.limits().cap_big is None
    # FTQ_USER_CAP_SMALL unset follows FTQ_USER_CAP
    assert load_settings({"FTQ_USER_CAP": "3"}, None).limits().cap_small == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("FTQ_POLICY", "priority"),
        ("FTQ_BIG_JOB_GPUS", "-8"),
        ("FTQ_BIG_JOB_GPUS", "8.5"),
        ("FTQ_USER_CAP_SMALL", "-2"),
        ("FTQ_USER_CAP_SMALL", "two"),
        ("FTQ_USER_CAP_BIG", "1.5"),
        ("FTQ_BIG_JOB_RESERVE", "-1"),
        ("FTQ_FAIR_SHARE_HALF_LIFE_HOURS", "0"),
        ("FTQ_FAIR_SHARE_HALF_LIFE_HOURS", "nan"),
        ("FTQ_MAX_WAIT_HOURS", "-1"),
        ("FTQ_PRIORITY_AGING_HOURS", "soon"),
        ("FTQ_DEFAULT_RUNTIME_MINUTES", "0"),
        ("FTQ_DEFAULT_GPU_TYPE", "a100"),
    ],
)
def test_bad_scheduling_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name) as caught:
        load_settings({name: value}, None)
    assert "\n" not in str(caught.value)


def test_a_reserve_above_the_configured_quota_is_refused() -> None:
    with pytest.raises(SettingsError, match="FTQ_BIG_JOB_RESERVE"):
        load_settings({"FTQ_BIG_JOB_RESERVE": "16", "FIREWORKS_GPU_QUOTA": "8"}, None)
    load_settings({"FTQ_BIG_JOB_RESERVE": "8", "FIREWORKS_GPU_QUOTA": "8"}, None)


def test_operations_settings_defaults_and_values() -> None:
    s = load_settings({}, None)
    assert (s.max_runtime_hours, s.max_runtime_minutes) == (None, None)  # no limit
    assert (s.stuck_minutes, s.stalled_minutes) == (60.0, 240.0)
    s = load_settings(
        {"FTQ_MAX_RUNTIME_HOURS": "1.5", "FTQ_STUCK_MINUTES": "5", "FTQ_STALLED_MINUTES": "30"},
        None,
    )
    assert (s.max_runtime_minutes, s.stuck_minutes, s.stalled_minutes) == (90.0, 5.0, 30.0)
    assert load_settings({"FTQ_MAX_RUNTIME_HOURS": ""}, None).max_runtime_hours is None


@pytest.mark.parametrize(
    "name", ["FTQ_MAX_RUNTIME_HOURS", "FTQ_STUCK_MINUTES", "FTQ_STALLED_MINUTES"]
)
@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf", "soon"])
def test_bad_operations_values_name_their_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value}, None)
