"""Envelope encryption of payload secrets (issue 20): the fields sealed are the redaction
rules' fields, a round trip gives the payload back exactly, and a sealed value opens only
with its own job's data key at its own place."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.redaction import MASK, redact
from service.secret_fields import is_secret_place
from service.secrets import envelope
from service.secrets.envelope import SecretsUnreadable
from service.secrets.keys import KEY_FILE, load_keyring, parse_key
from service.settings import SettingsError

JOB = "0190a1b2-0000-7000-8000-000000000001"
PAYLOAD: dict[str, Any] = {
    "dataset": "accounts/a/datasets/d",
    "wandbConfig": {"apiKey": 'wb-ünïcode "q" \\ secret', "project": "p"},
    "awsS3Config": {"credentialsSecret": {"nested": [1, 2.5, None, True]}, "bucket": "b"},
    "hooks": [{"hfToken": "hf_1"}, {"hfToken": "hf_2", "maxOutputTokens": 7}],
    "inferenceParameters": {"maxOutputTokens": 1024},
}


def test_seal_hides_exactly_what_redaction_hides_and_unseal_restores_it() -> None:
    key = envelope.new_data_key()
    sealed = envelope.seal(PAYLOAD, JOB, key)
    text = msgspec.json.encode(sealed).decode()
    for secret in ("wb-ünïcode", "hf_1", "hf_2", "nested"):
        assert secret not in text
    assert redact(sealed) == redact(PAYLOAD)  # the same fields show "***"
    assert redact(sealed)["wandbConfig"]["apiKey"] == MASK
    assert envelope.sealed_fields(sealed) == envelope.secret_fields(PAYLOAD)
    assert envelope.secret_fields(PAYLOAD) == [
        "wandbConfig.apiKey", "awsS3Config.credentialsSecret", "hooks[0].hfToken",
        "hooks[1].hfToken",
    ]  # fmt: skip
    assert envelope.plain_fields(sealed) == []
    opened = envelope.unseal(sealed, JOB, key)
    assert msgspec.json.encode(opened) == msgspec.json.encode(PAYLOAD)  # same bytes, same order


def test_a_sealed_value_opens_only_with_its_key_job_and_place() -> None:
    key = envelope.new_data_key()
    sealed = envelope.seal(PAYLOAD, JOB, key)
    with pytest.raises(SecretsUnreadable):
        envelope.unseal(sealed, JOB, envelope.new_data_key())
    with pytest.raises(SecretsUnreadable):
        envelope.unseal(sealed, "another-job", key)
    moved = {**sealed, "hooks": [sealed["hooks"][1], sealed["hooks"][0]]}
    with pytest.raises(SecretsUnreadable):
        envelope.unseal(moved, JOB, key)
    with pytest.raises(SecretsUnreadable, match="shredded"):
        envelope.unseal(sealed, JOB, None)
    redacted = envelope.redact_plain(PAYLOAD)
    assert envelope.plain_fields(redacted) == []
    with pytest.raises(SecretsUnreadable, match="redacted"):
        envelope.unseal(redacted, JOB, key)


def test_nonces_never_repeat_and_a_payload_without_secrets_is_untouched() -> None:
    key = envelope.new_data_key()
    one, two = envelope.seal(PAYLOAD, JOB, key), envelope.seal(PAYLOAD, JOB, key)
    assert one["wandbConfig"]["apiKey"]["n"] != two["wandbConfig"]["apiKey"]["n"]
    plain = {"dataset": "d", "inferenceParameters": {"maxOutputTokens": 5}}
    assert envelope.seal(plain, JOB, key) == plain and envelope.secret_fields(plain) == []


def test_wrap_and_unwrap_bind_the_data_key_to_its_job() -> None:
    master, data_key = os.urandom(32), envelope.new_data_key()
    wrapped = envelope.wrap(master, JOB, data_key)
    assert envelope.unwrap(master, JOB, wrapped) == data_key
    with pytest.raises(SecretsUnreadable):
        envelope.unwrap(os.urandom(32), JOB, wrapped)
    with pytest.raises(SecretsUnreadable):
        envelope.unwrap(master, "another-job", wrapped)


def test_a_forged_marker_is_refused_at_seal() -> None:
    with pytest.raises(ValueError, match=r"may not be"):
        envelope.seal({"wandbConfig": {"apiKey": {"$ftq_enc": "v1"}}}, JOB, os.urandom(32))
    problems = envelope.posing_as_sealed({"wandbConfig": {"apiKey": {"$ftq_enc": "v1"}}})
    assert problems[0]["field"] == "fireworks_payload.wandbConfig.apiKey"


scalars = (
    st.none() | st.booleans() | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text()
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


@given(secret=json_values, other=json_values)
def test_any_json_secret_round_trips_exactly(secret: Any, other: Any) -> None:
    payload = {"wandbConfig": {"apiKey": secret, "project": other}, "token": secret}
    key = envelope.new_data_key()
    opened = envelope.unseal(envelope.seal(payload, JOB, key), JOB, key)
    assert msgspec.json.encode(opened) == msgspec.json.encode(payload)


# Keys that are secrets by name or by Fireworks path, and keys that are not.
keys = st.sampled_from(
    ["apiKey", "hfToken", "password", "maxOutputTokens", "wandbConfig", "awsS3Config",
     "credentialsSecret", "project", "items", "secretAccessKey", "tokenizerName"]
) | st.text(max_size=4)  # fmt: skip
payloads = st.dictionaries(
    keys,
    st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
        max_leaves=12,
    ),
    max_size=4,
)


def _reference_places(value: Any, path: tuple[str, ...] = (), where: str = "") -> list[str]:
    """The places of secrets straight from the rules, the plainest way (an oracle)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            here, at = (*path, key), f"{where}.{key}" if where else key
            if item is not None and is_secret_place(here):
                found.append(at)
            else:
                found += _reference_places(item, here, at)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += _reference_places(item, path, f"{where}[{i}]")
    return found


@given(payload=payloads)
def test_the_three_walks_agree_on_every_payload(payload: dict[str, Any]) -> None:
    """Sealing (a copying walk), finding (`secret_fields`, a walk that copies nothing) and
    redaction meet the same places: what `secret_fields` names is exactly what `seal` sealed
    and what `redact` masks, and sealing in one walk under a new key opens to the same
    payload."""
    places = envelope.secret_fields(payload)
    assert places == _reference_places(payload)
    key = envelope.new_data_key()
    sealed = envelope.seal(payload, JOB, key)
    assert envelope.sealed_fields(sealed) == places
    assert envelope.plain_fields(sealed) == []
    assert envelope.plain_fields(payload) == places  # nothing in a fresh payload is sealed
    masked = redact(payload)
    assert envelope.secret_fields(masked) == places  # masks sit at the same places
    assert all(value == MASK for value, _ in envelope._secrets(masked))
    found = envelope.seal_under_new_key(payload, JOB)
    if not places:
        assert found is None
    else:
        assert found is not None
        again, new_key = found
        assert envelope.sealed_fields(again) == places
        opened = envelope.unseal(again, JOB, new_key)
        assert msgspec.json.encode(opened) == msgspec.json.encode(payload)


def test_master_key_from_the_setting_or_a_0600_key_file(tmp_path: Path) -> None:
    text = base64.b64encode(os.urandom(32)).decode()
    assert load_keyring(text, tmp_path).current == parse_key(text, "x")
    assert not (tmp_path / KEY_FILE).exists()
    made = load_keyring(None, tmp_path / "data")
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(None, tmp_path / "data").current == made.current  # made once
    assert text not in repr(load_keyring(text, tmp_path))


@pytest.mark.parametrize("bad", ["not base64!!", base64.b64encode(b"short").decode(), " "])
def test_a_malformed_key_names_the_setting_never_the_value(bad: str, tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="FTQ_SECRET_KEY") as err:
        parse_key(bad, "FTQ_SECRET_KEY")
    assert bad.strip() == "" or bad not in str(err.value)
