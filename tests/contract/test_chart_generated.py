"""The chart's generated files match their Python sources, and the sources are sound."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from pydantic import ValidationError

from sandboxer.api.crdgen import render
from sandboxer.api.kinds import ALL_KINDS
from sandboxer.deploy import chartgen
from sandboxer.deploy.chart_values import ChartValues
from tests.contract.helm_chart import CHART, PRODUCTION_VALUES


def test_committed_chart_files_match_the_generator() -> None:
    stale = chartgen.drifted(CHART)
    assert not stale, f"out of date, run `make chart`: {[str(p) for p in stale]}"


def test_drift_is_detected(tmp_path: Path) -> None:
    chart = tmp_path / "chart"
    (chart / "files").mkdir(parents=True)
    (chart / "README.md").write_text(
        f"# x\n{chartgen.README_START}\nold\n{chartgen.README_END}\nafter\n"
    )
    assert len(chartgen.drifted(chart)) == len(chartgen.generated(chart))  # every file
    chartgen.write(chart)
    assert chartgen.drifted(chart) == []
    assert chartgen.main(["--chart", str(chart), "--check"]) == 0
    (chart / "files" / "rbac.yaml").write_text("operator: []\n")
    assert chartgen.drifted(chart) == [chart / "files" / "rbac.yaml"]
    assert chartgen.main(["--chart", str(chart), "--check"]) == 1
    assert (chart / "README.md").read_text().endswith(f"{chartgen.README_END}\nafter\n")


def test_values_yaml_is_the_model_defaults() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values == ChartValues().model_dump(mode="json", by_alias=True)


def test_schema_accepts_defaults_and_production_and_rejects_typos() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert "$ref" not in json.dumps(schema)
    validator = jsonschema.Draft7Validator(schema)
    validator.validate(yaml.safe_load((CHART / "values.yaml").read_text()))
    validator.validate(yaml.safe_load(PRODUCTION_VALUES.read_text()))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"operator": {"replicaCount": 2}})
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({"agent": {"sampleInterval": "10 seconds"}})


def test_production_values_parse_and_default_objects_are_checked_against_the_api() -> None:
    values = ChartValues.model_validate(yaml.safe_load(PRODUCTION_VALUES.read_text()))
    assert values.operator.peering.enabled
    with pytest.raises(ValidationError, match="gpu"):
        ChartValues.model_validate({"sandboxClasses": [{"name": "x", "spec": {"image": "i"}}]})


def test_chart_crds_are_the_generated_ones() -> None:
    for kind in ALL_KINDS:
        generated = render(kind)
        committed = next((CHART / "crds").glob(f"*_{kind.plural}.yaml")).read_text()
        assert committed == generated, f"helm/sandboxer/crds is stale for {kind.kind}: make crds"
