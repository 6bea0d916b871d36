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
