"""RBAC grants exactly the API calls the operator and the agent make: none missing, none unused.

The calls come from the code: the operator's own client refuses anything outside
`controller.kube.CALLS`; kopf's watches and patches follow from the handler registry that
`runner.build_registry` builds; the agent's are `metering.publisher.CALLS`. The last two tests
run the real code against the embedded API and map every request it sent to an RBAC verb.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import kopf
import pytest
import yaml

from sandboxer import GROUP, rbac
from sandboxer.api.crdgen import crd
from sandboxer.api.kinds import ALL_KINDS
from sandboxer.api.nodereport import GPUNodeReportStatus
from sandboxer.controller import kube
from sandboxer.controller.children import desired_children
from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.runner import build_registry
from sandboxer.devcluster.operatorthread import OPERATOR_USER
from sandboxer.devcluster.server import Sent
from sandboxer.metering import publisher
from tests.integration.conftest import eventually
from tests.integration.metering_api import kube_http, reports_cluster
from tests.integration.operator_api import (
    ESB,
    NS,
    Api,
    operator_config,
    running_operator,
    team_cluster,
)
from tests.sandbox_fixtures import example_class, make_sandbox

Call = tuple[str, str, str]  # (apiGroup, resource[/subresource], verb)
WEBHOOK_CONFIGS = ("mutatingwebhookconfigurations", "validatingwebhookconfigurations")


def granted(rules: Iterable[rbac.Rule]) -> set[Call]:
    return {(group, resource, verb) for group, resource, verbs in rules for verb in verbs}


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def client_calls() -> set[Call]:
    """What the operator's own client may send (it refuses anything else)."""
    out = set()
    for api_version, kind, subresource, verb in kube.CALLS:
        plural, _ = kube.RESOURCES[(api_version, kind)]
        out.add((_group(api_version), f"{plural}/{subresource}" if subresource else plural, verb))
    return out


def _has_status(group: str, plural: str) -> bool:
    return group == GROUP and any(
        "status" in crd(k)["spec"]["versions"][0].get("subresources", {})
        for k in ALL_KINDS
        if k.plural == plural
    )


def kopf_calls(registry: kopf.OperatorRegistry) -> set[Call]:
    """kopf's own calls for these handlers: list+watch what it follows, patch what it handles."""
    out: set[Call] = set()
    watched = [
        *registry._indexing.get_all_selectors(),
        *registry._watching.get_all_selectors(),
        *registry._spawning.get_all_selectors(),
    ]
    handled = registry._changing.get_all_selectors()
    for selector in [*watched, *handled]:
        plural = selector.plural or selector.any_name
        assert plural, f"handler selector without a resource: {selector}"
        group = selector.group or ""
        out |= {(group, plural, "list"), (group, plural, "watch")}
    # Progress annotations on the object itself; handler status through /status where the CRD
    # has that subresource (kopf splits the patch).
    for selector in [*handled, *registry._spawning.get_all_selectors()]:
        group, plural = selector.group or "", selector.plural or selector.any_name or ""
        out.add((group, plural, "patch"))
        if _has_status(group, plural):
            out.add((group, f"{plural}/status", "patch"))
    # Always: the resource observer follows CRDs; handlers post Events (core v1).
    out |= {
        ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
        ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
        ("", "events", "create"),
    }
    return out


def adoption_calls() -> set[Call]:
    """Children made with blockOwnerDeletion need update on the owner's finalizers."""
    owner = {
        "apiVersion": f"{GROUP}/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": "nb", "namespace": "team-a", "uid": "u1"},
    }
    children = desired_children(make_sandbox(), example_class(), ())
    kopf.adopt([c.obj for c in children], owner=owner)
    blocking = any(
        ref.get("blockOwnerDeletion")
        for c in children
        for ref in c.obj["metadata"]["ownerReferences"]
    )
    return {(GROUP, "experimentsandboxes/finalizers", "update")} if blocking else set()


def operator_calls(config: OperatorConfig) -> set[Call]:
    return client_calls() | kopf_calls(build_registry(config)) | adoption_calls()


PEERING_CALLS = {("kopf.dev", "clusterkopfpeerings", v) for v in ("list", "watch", "patch")}
# kopf creates each configuration (409 when it exists) and patches its webhooks in.
MANAGEMENT_CALLS = {
    ("admissionregistration.k8s.io", plural, verb)
    for plural in WEBHOOK_CONFIGS
    for verb in ("create", "patch")
}
# As the chart runs it: webhooks served, a ledger, so the accounting loop runs too.
IN_CLUSTER = OperatorConfig(
    webhook_port=9443, webhook_managed=None, ledger_url="file:///var/lib/sandboxer/ledger"
)


LEASE_CALLS = {("coordination.k8s.io", "leases", v) for v in ("get", "create", "update")}


def test_operator_rules_are_exactly_what_the_operator_calls() -> None:
    # The Lease calls are granted by the namespaced leader-election Role, not the ClusterRole.
    needs, rules = operator_calls(IN_CLUSTER) - LEASE_CALLS, granted(rbac.OPERATOR_RULES)
    assert not needs - rules, f"calls without a rule in OPERATOR_RULES: {sorted(needs - rules)}"
    assert not rules - needs, f"rules nothing uses: {sorted(rules - needs)}"


def test_optional_rules_are_exactly_what_their_mode_adds() -> None:
    assert granted(rbac.PEERING_RULES) == PEERING_CALLS
    assert granted(rbac.LEADER_ELECTION_RULES) == LEASE_CALLS <= client_calls()
    assert granted(rbac.WEBHOOK_MANAGEMENT_RULES) == MANAGEMENT_CALLS
    # Without a webhook server the operator needs nothing more (admission handlers are off).
    assert operator_calls(OperatorConfig()) - LEASE_CALLS <= granted(rbac.OPERATOR_RULES)


def test_operator_cannot_read_secrets_or_webhook_configurations() -> None:
    for verb in ("get", "list", "watch", "patch"):
        assert not rbac.covers(rbac.OPERATOR_RULES, "", "secrets", verb)
    for plural in WEBHOOK_CONFIGS:
        for verb in ("get", "list", "watch"):
            assert not rbac.covers(rbac.WEBHOOK_MANAGEMENT_RULES, "admissionregistration.k8s.io",
                                   plural, verb)  # fmt: skip


@pytest.mark.parametrize(
    "expose",
    [
        {"kind": "None"},
        {"kind": "Ingress", "host": "{name}.example.com"},
        {"kind": "HTTPRoute", "host": "{name}.example.com", "gatewayName": "gw"},
    ],
)
def test_children_are_written_only_through_declared_calls(expose: dict[str, Any]) -> None:
    calls = client_calls()
    for child in desired_children(make_sandbox(), example_class(expose=expose), ()):
        api_version, kind = child.obj["apiVersion"], child.obj["kind"]
        plural, _ = kube.RESOURCES[(api_version, kind)]
        assert (_group(api_version), plural, "create") in calls, kind
        if child.patch is not None:
            assert (_group(api_version), plural, "patch") in calls, kind


def test_every_declared_child_write_is_made_by_some_child() -> None:
    made: set[Call] = set()
    for expose in ({"kind": "Ingress", "host": "h"}, {"kind": "HTTPRoute", "host": "h"}):
        for child in desired_children(make_sandbox(), example_class(expose=expose), ()):
            group = _group(child.obj["apiVersion"])
            plural, _ = kube.RESOURCES[(child.obj["apiVersion"], child.obj["kind"])]
            made.add((group, plural, "create"))
            if child.patch is not None:
                made.add((group, plural, "patch"))
    writes = {c for c in client_calls() if c[2] in ("create", "patch") and "/" not in c[1]}
    # The loop's writes (spec.suspend on a sandbox, its Events) and the leader Lease are not
    # child writes.
    loop = {(GROUP, "experimentsandboxes", "patch"), ("", "events", "create")}
    assert writes - loop - LEASE_CALLS == made


def test_agent_rules_are_exactly_its_calls() -> None:
    assert granted(rbac.AGENT_RULES) == set(publisher.CALLS)


# --- The real code against the embedded API: every request it sends maps to a granted call. ----


def request_call(method: str, path: str, query: dict[str, str]) -> Call | None:
    """The RBAC (group, resource, verb) of one API request; None for discovery."""
    parts = path.strip("/").split("/")
    if parts[0] == "api" and len(parts) > 2:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) > 3:
        group, rest = parts[1], parts[3:]
    else:
        return None  # /api, /apis, /apis/<group>/<version>: discovery, not RBAC'd per resource
    if rest[0] == "namespaces" and len(rest) > 2:
        rest = rest[2:]  # a namespaced path; "namespaces/<name>" alone is the namespace itself
    resource, name, sub = [*rest, None, None][:3]
    resource = f"{resource}/{sub}" if sub else resource
    verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method)
    if method == "GET":
        verb = "get" if name else "watch" if query.get("watch") in ("true", "1") else "list"
    assert verb and resource, f"unexpected request {method} {path}"
    return group, resource, verb


def sent(log: Iterable[Sent], user: str) -> set[Call]:
    """The RBAC calls of every request `user` sent (the test's own go as admin)."""
    calls = (request_call(r.method, r.path, r.query) for r in log if r.user == user)
    return {call for call in calls if call}


async def test_the_agent_sends_only_its_declared_calls() -> None:
    async with reports_cluster() as cluster:
        http = kube_http(cluster)  # as admin: the only HTTP client of this cluster
        try:
            report = publisher.NodeReportPublisher(http, "node-a")
            status = GPUNodeReportStatus(
                node="node-a", epoch="e1", sequence=1, reported_at=datetime(2026, 1, 1, tzinfo=UTC)
            )
            await report.publish(status)  # 404, create, patch
            await report.publish(status)
            await publisher.NodePods(http, "node-a").uids()
        finally:
            await http.close()
        assert sent(cluster.http.log, "admin") == set(publisher.CALLS)


async def test_the_operator_sends_only_granted_calls(repo_root: Any) -> None:
    """Class, sandbox, children, their pod running, webhooks managed by kopf: all within RBAC."""
    async with team_cluster() as cluster, cluster.session() as session:
        api = Api(session)
        async with running_operator(operator_config(cluster, webhooks=True)):
            sandbox = yaml.safe_load((repo_root / "examples" / "sandbox.yaml").read_text())
            sandbox["metadata"] |= {"name": "nb", "namespace": NS}
            sandbox["spec"]["owner"] = "alice"
            # kopf may register its webhooks after this create: store it as admission would.
            sandbox["metadata"]["annotations"] = {"sandboxer.io/owner-groups": ""}
            assert await api.post(f"{ESB}/namespaces/{NS}/experimentsandboxes", sandbox) == 201
            # The embedded API runs the pod; kopf sees the child change, we re-derive the status.
            await eventually(
                lambda: (
                    {
                        (GROUP, "experimentsandboxes/status", "patch"),
                        ("apps", "statefulsets", "create"),
                    }
                    <= sent(cluster.http.log, OPERATOR_USER)
                ),
                within=30,
                message="a status patch of the sandbox",
            )
        calls = sent(cluster.http.log, OPERATOR_USER)
    rules = granted(rbac.OPERATOR_RULES + rbac.WEBHOOK_MANAGEMENT_RULES)
    assert not calls - rules, f"sent without a rule: {sorted(calls - rules)}"
    # What this scenario exercises of the rules (peering and some child kinds are not).
    assert {
        (GROUP, "experimentsandboxes", "watch"),
        ("", "secrets", "create"),
        ("apps", "statefulsets", "create"),
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"),
    } <= calls
