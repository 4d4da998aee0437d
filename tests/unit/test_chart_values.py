"""The chart values model refuses what the chart could not render into a working install."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandboxer import rbac
from sandboxer.deploy.chart_values import ChartValues


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"ledger": {"url": "/var/lib/ledger"}}, "ledger.url"),
        ({"ledger": {"url": "s3://"}}, "ledger.url"),
        ({"operator": {"image": {"repository": "r", "digest": "sha256:abc"}}}, "digest"),
        ({"agent": {"reportInterval": "30"}}, "reportInterval"),
        ({"webhook": {"timeoutSeconds": 0}}, "timeoutSeconds"),
        ({"export": {"formats": []}}, "formats"),
        ({"export": {"formats": ["xlsx"]}}, "formats"),
        ({"operator": {"replicaCount": 2}}, "replicaCount"),
        ({"computeBudgets": [{"name": "Team A", "spec": {}}]}, "name"),
    ],
)
def test_bad_values_name_the_field(values: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        ChartValues.model_validate(values)
    assert field.split(".")[-1] in str(err.value)


def test_accepts_s3_ledger_with_irsa() -> None:
    values = ChartValues.model_validate(
        {"ledger": {"url": "s3://my-bucket/ledger", "s3": {"roleArn": "arn:aws:iam::1:role/x"}}}
    )
    assert values.ledger.s3.role_arn.endswith("role/x")


def test_policy_rules_keep_one_rule_per_resource_in_order() -> None:
    rules = [("", "pods", ("get", "list")), ("apps", "statefulsets", ("create",))]
    assert rbac.policy_rules(rules) == [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["create"]},
    ]
    assert rbac.covers(rules, "", "pods", "list")
    assert not rbac.covers(rules, "", "pods", "delete")
    assert not rbac.covers(rules, "apps", "pods", "get")
