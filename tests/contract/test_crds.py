"""The committed CRDs are exactly what the models generate, and they are structural."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sandboxer.api import crdgen, structural
from sandboxer.api.kinds import ALL_KINDS
from sandboxer.cli import app


@pytest.mark.parametrize("folder", ["crds", "helm/sandboxer/crds"])
def test_committed_crds_match_the_models(repo_root: Path, folder: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["crds", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    generated = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    committed = {p.name: p.read_bytes() for p in (repo_root / folder).glob("*.yaml")}
    assert set(generated) == set(committed), "run `make crds` and commit the result"
    for name, data in generated.items():
        assert committed[name] == data, f"{folder}/{name} drifted: run `make crds`"


def test_crds_to_stdout_covers_every_kind() -> None:
    result = CliRunner().invoke(app, ["crds"])
    assert result.exit_code == 0
    docs = [d for d in yaml.safe_load_all(result.output) if d]
    assert sorted(d["spec"]["names"]["kind"] for d in docs) == sorted(k.kind for k in ALL_KINDS)


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_generated_schemas_are_structural(kind: crdgen.Kind) -> None:  # type: ignore[name-defined]
    schema = crdgen.openapi_schema(kind)
    assert structural.violations(schema) == []


@pytest.mark.parametrize("kind", ALL_KINDS, ids=lambda k: k.kind)
def test_every_kind_has_status_subresource_and_descriptions(kind: crdgen.Kind) -> None:  # type: ignore[name-defined]
    version = crdgen.crd(kind)["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["description"]
    assert "status" in schema["properties"]


def test_sandbox_printer_columns_show_what_engineers_need() -> None:
    crd = crdgen.crd(crdgen.ALL_KINDS[0])
    columns = [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]]
    for wanted in ("Phase", "Class", "GPUs", "Owner", "Idle", "Budget-Left", "URL", "Age"):
        assert wanted in columns
    assert crd["spec"]["names"]["shortNames"] == ["esb", "sandbox"]


def test_conditions_are_map_lists_keyed_by_type() -> None:
    schema = crdgen.openapi_schema(ALL_KINDS[0])
    conditions = schema["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]


def _breakages() -> list[tuple[str, dict, str]]:  # type: ignore[type-arg]
    base = crdgen.openapi_schema(ALL_KINDS[0])
    cases = []

    no_type = copy.deepcopy(base)
    del no_type["properties"]["spec"]["properties"]["gpus"]["type"]
    cases.append(("missing type", no_type, "spec.properties.gpus: missing 'type'"))

    ref = copy.deepcopy(base)
    ref["properties"]["spec"]["properties"]["idle"] = {"$ref": "#/$defs/SandboxIdle"}
    cases.append(("$ref", ref, "$ref is not allowed"))

    junctor = copy.deepcopy(base)
    junctor["properties"]["spec"]["properties"]["image"] = {
        "anyOf": [{"type": "string", "description": "x"}, {"type": "integer"}]
    }
    cases.append(("type inside anyOf", junctor, "'type' is not allowed inside anyOf"))

    both = copy.deepcopy(base)
    both["properties"]["spec"]["additionalProperties"] = {"type": "string"}
    cases.append(("properties+additionalProperties", both, "mutually exclusive"))

    meta = copy.deepcopy(base)
    meta["properties"]["metadata"]["properties"]["labels"] = {"type": "object"}
    cases.append(("metadata restriction", meta, "only name and generateName"))
    return cases


@pytest.mark.parametrize(
    ("label", "schema", "expected"), _breakages(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_structural_checker_catches_broken_schemas(label: str, schema: dict, expected: str) -> None:  # type: ignore[type-arg]
    found = structural.violations(schema)
    assert any(expected in v for v in found), (label, found)
