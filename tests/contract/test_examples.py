"""Every example validates against its CRD; broken manifests are refused with readable messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from sandboxer.api import crdgen, validation
from sandboxer.api.kinds import by_kind

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.yaml") if not p.name.startswith("values"))
BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _errors(obj: dict[str, Any]) -> list[validation.FieldError]:
    return validation.validate(crdgen.openapi_schema(by_kind(obj["kind"])), obj)


def test_there_are_examples_of_each_user_facing_kind() -> None:
    kinds = {d["kind"] for p in EXAMPLES for d in _docs(p)}
    assert {"ExperimentSandbox", "SandboxClass", "ComputeBudget", "RateCard"} <= kinds


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates_against_its_crd(path: Path) -> None:
    for doc in _docs(path):
        assert _errors(doc) == []
        # The pydantic model (used by the webhook and operator) accepts it too.
        by_kind(doc["kind"]).spec.model_validate(doc["spec"])


def test_minimal_sandbox_is_at_most_ten_lines() -> None:
    lines = [
        line
        for line in (ROOT / "examples/sandbox.yaml").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) <= 10


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_manifest_is_refused_with_a_readable_message(path: Path) -> None:
    expected = path.read_text().splitlines()[0].removeprefix("# expect: ")
    errors = [str(e) for e in _errors(_docs(path)[0])]
    assert any(expected in e for e in errors), errors


def test_defaults_are_applied_like_the_api_server() -> None:
    obj = _docs(ROOT / "examples/sandbox.yaml")[0]
    del obj["spec"]["gpus"]
    schema = crdgen.openapi_schema(by_kind("ExperimentSandbox"))
    filled = validation.apply_defaults(schema, obj)
    assert filled["spec"]["gpus"] == 1
    assert filled["spec"]["suspend"] is False
    assert "gpus" not in obj["spec"], "apply_defaults must not mutate its input"
