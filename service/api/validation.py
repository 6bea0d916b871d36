"""Per-kind checks of a Fireworks payload at submit, so mistakes surface now rather than
hours later when Fireworks refuses the create. Each problem is one `details` entry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

Problem = dict[str, str]

_STRINGS: Final = (
    "dataset",
    "baseModel",
    "warmStartFrom",
    "evaluator",
    "outputModel",
    "displayName",
    "evaluationDataset",
    "jinjaTemplate",
    "region",
)
_OBJECTS: Final = (
    "trainingConfig",
    "lossConfig",
    "inferenceParameters",
    "wandbConfig",
    "awsS3Config",
    "azureBlobStorageConfig",
)
_INTEGERS: Final = ("epochs", "loraRank", "maxContextLength", "batchSize", "nodeCount")
_NUMBERS: Final = ("learningRate",)


def _field(path: str) -> str:
    return f"fireworks_payload.{path}"


def _type_problems(payload: Mapping[str, Any], prefix: str = "") -> list[Problem]:
    out: list[Problem] = []
    for key in _STRINGS:
        if key in payload and not isinstance(payload[key], str):
            out.append({"field": _field(prefix + key), "problem": "must be a string"})
        elif key in payload and not payload[key].strip() and key != "jinjaTemplate":
            out.append({"field": _field(prefix + key), "problem": "must not be empty"})
    for key in _OBJECTS:
        if key in payload and not isinstance(payload[key], dict):
            out.append({"field": _field(prefix + key), "problem": "must be an object"})
    for key in _INTEGERS:
        value = payload.get(key)
        if key in payload and (isinstance(value, bool) or not isinstance(value, int)):
            out.append({"field": _field(prefix + key), "problem": "must be an integer"})
    for key in _NUMBERS:
        value = payload.get(key)
        if key in payload and (isinstance(value, bool) or not isinstance(value, int | float)):
            out.append({"field": _field(prefix + key), "problem": "must be a number"})
    return out


def _required(payload: Mapping[str, Any], key: str, prefix: str = "") -> list[Problem]:
    if payload.get(key) is None:
        return [{"field": _field(prefix + key), "problem": "required"}]
    return []


def _one_model(payload: Mapping[str, Any], prefix: str = "") -> list[Problem]:
    given = [k for k in ("baseModel", "warmStartFrom") if payload.get(k) is not None]
    if not given:
        return [
            {
                "field": _field(prefix + "baseModel"),
                "problem": "baseModel or warmStartFrom required",
            }
        ]
    if len(given) == 2:
        return [
            {
                "field": _field(prefix + "warmStartFrom"),
                "problem": "give baseModel or warmStartFrom, not both",
            }
        ]
    return []


def payload_problems(kind: str, payload: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with `payload` for a job of `kind` (empty when it looks right)."""
    problems = _type_problems(payload) + _required(payload, "dataset")
    training = payload.get("trainingConfig")
    if isinstance(training, dict):
        problems += _type_problems(training, "trainingConfig.")
    match kind:
        case "SFT":
            problems += _one_model(payload)
        case "DPO":
            if payload.get("warmStartFrom") is None:
                if not isinstance(training, dict):
                    if "trainingConfig" not in payload:
                        problems.append({"field": _field("trainingConfig"), "problem": "required"})
                else:
                    problems += _one_model(training, "trainingConfig.")
        case "RFT":
            problems += _required(payload, "evaluator")
    return problems
