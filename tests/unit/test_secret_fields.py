"""Redaction hides the secret-bearing fields and only those (issue 13, item 4)."""

from __future__ import annotations

import pytest

from service.redaction import MASK, redact
from service.secret_fields import is_secret_key, is_secret_path

HIDDEN = [
    "hfToken",
    "clientSecret",
    "privateKey",
    "api_key",
    "apiKey",
    "password",
    "awsCredentials",
    "secret_access_key",
    "accessKey",
    "token",
    "HF_TOKEN",
]
VISIBLE = [
    "maxOutputTokens",
    "maxTokens",
    "tokenizerName",
    "numTokens",
    "keyColumn",
    "max_tokens",
    "inputTokens",
    "keyName",
    "passwordPolicyUrl",
    "monkey",
]


@pytest.mark.parametrize("key", HIDDEN)
def test_secret_names_are_hidden(key: str) -> None:
    assert is_secret_key(key)
    assert redact({"x": {key: "v"}}) == {"x": {key: MASK}}


@pytest.mark.parametrize("key", VISIBLE)
def test_ordinary_names_stay_visible(key: str) -> None:
    assert not is_secret_key(key)
    assert redact({"inferenceParameters": {key: 1024}}) == {"inferenceParameters": {key: 1024}}


@pytest.mark.parametrize(
    "path",
    [
        "wandbConfig.apiKey",
        "awsS3Config.credentialsSecret",
        "azureBlobStorageConfig.sasToken",
        "azureBlobStorageConfig.connectionString",
        "azureBlobStorageConfig.accountKey",
    ],
)
def test_fireworks_secret_paths(path: str) -> None:
    assert is_secret_path(path.split("."))
    outer, inner = path.split(".")
    payload = {"fireworks_payload": {outer: {inner: "s3cr3t", "bucket": "b"}}}
    assert redact(payload) == {"fireworks_payload": {outer: {inner: MASK, "bucket": "b"}}}


def test_max_output_tokens_is_shown() -> None:
    payload = {"evaluator": "e", "inferenceParameters": {"maxOutputTokens": 1024, "topK": 4}}
    assert redact(payload) == payload
