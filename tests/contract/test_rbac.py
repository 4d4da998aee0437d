"""The chart's ClusterRoles are exactly the rules in `sandboxer.rbac`, and those are narrow."""

from __future__ import annotations

from typing import Any

import pytest

from sandboxer import rbac
from tests.contract.helm_chart import (
    default_text,
    find,
    objects,
    production_text,
    template_text,
)


def _rules(role: dict[str, Any]) -> list[rbac.Rule]:
    out: list[rbac.Rule] = []
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.append((group, resource, tuple(rule["verbs"])))
    return out


def _role(name_suffix: str, text: str | None = None) -> dict[str, Any]:
    return find(objects(text or default_text()), "ClusterRole", name_suffix)


@pytest.mark.parametrize(
    ("suffix", "rules"),
    [
        ("-operator", rbac.OPERATOR_RULES),
        ("-agent", rbac.AGENT_RULES),
        ("sandboxer-user", rbac.USER_RULES),
        ("sandboxer-viewer", rbac.VIEWER_RULES),
    ],
)
def test_rendered_cluster_roles_equal_the_rule_source(suffix: str, rules: list[rbac.Rule]) -> None:
    assert _rules(_role(suffix)) == rules


def test_webhook_management_rules_only_when_the_operator_manages_webhooks() -> None:
    text = template_text("--set", "webhook.managedByOperator=true")
    assert _rules(_role("-operator", text)) == rbac.OPERATOR_RULES + rbac.WEBHOOK_MANAGEMENT_RULES
    kinds = {o["kind"] for o in objects(text)}
    assert "MutatingWebhookConfiguration" not in kinds
    assert "ValidatingWebhookConfiguration" not in kinds


def test_peering_rules_only_with_peering() -> None:
    role = _role("-operator", production_text())
    assert _rules(role) == rbac.OPERATOR_RULES + rbac.PEERING_RULES
    assert not rbac.covers(rbac.OPERATOR_RULES, "kopf.dev", "clusterkopfpeerings", "list")


def test_no_wildcards_and_no_escalation_verbs() -> None:
    for name, rules in rbac.ROLES.items():
        for group, resource, verbs in rules:
            assert "*" not in (group, resource, *verbs), name
            assert not {"escalate", "bind", "impersonate"} & set(verbs), name
            assert len(set(verbs)) == len(verbs), f"{name}: duplicate verbs on {resource}"


def test_operator_never_reads_secrets() -> None:
    for verb in ("get", "list", "watch"):
        assert not rbac.covers(rbac.OPERATOR_RULES, "", "secrets", verb)
    assert rbac.covers(rbac.OPERATOR_RULES, "", "secrets", "create")


def test_agent_reads_pods_and_writes_only_node_reports() -> None:
    writes = {"create", "update", "patch", "delete", "deletecollection"}
    for group, resource, verbs in rbac.AGENT_RULES:
        if set(verbs) & writes:
            assert (group, resource.split("/")[0]) == ("sandboxer.io", "gpunodereports")
        assert "delete" not in verbs
    assert rbac.covers(rbac.AGENT_RULES, "", "pods", "list")
    assert not rbac.covers(rbac.AGENT_RULES, "", "pods", "get")
    assert not rbac.covers(rbac.AGENT_RULES, "", "pods", "patch")


def test_viewer_is_read_only_and_user_cannot_touch_status() -> None:
    for _, _, verbs in rbac.VIEWER_RULES:
        assert set(verbs) <= {"get", "list", "watch"}
    status_verbs = next(v for _, r, v in rbac.USER_RULES if r == "experimentsandboxes/status")
    assert set(status_verbs) <= {"get", "list", "watch"}


def test_user_roles_aggregate_into_the_builtin_roles() -> None:
    user = _role("sandboxer-user")["metadata"]["labels"]
    viewer = _role("sandboxer-viewer")["metadata"]["labels"]
    assert user["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert viewer["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


def test_bindings_point_at_the_release_service_accounts() -> None:
    objs = objects(default_text())
    for suffix in ("-operator", "-agent"):
        binding = find(objs, "ClusterRoleBinding", suffix)
        account = find(objs, "ServiceAccount", suffix)
        assert binding["roleRef"]["name"] == _role(suffix)["metadata"]["name"]
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": account["metadata"]["namespace"],
            }
        ]
