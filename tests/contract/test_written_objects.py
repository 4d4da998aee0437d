"""Every object the operator writes validates against upstream Kubernetes schemas
(kubernetes-validate, strict: unknown fields fail) for 1.29 and the newest version it knows,
and the status it writes validates against our own CRD schema."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import kopf
import kubernetes_validate
import pytest

from sandboxer.api.crdgen import openapi_schema
from sandboxer.api.kinds import EXPERIMENT_SANDBOX
from sandboxer.api.sandbox import ExperimentSandboxStatus
from sandboxer.api.validation import validate
from sandboxer.controller.children import desired_children
from sandboxer.manifests.status import derive_status, status_patch
from tests.sandbox_fixtures import example_class, make_sandbox

VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
HOST = "{name}.{namespace}.notebooks.example.com"
CLASSES = {
    "h100": example_class(
        priorityClassName="gpu", schedulerName="volcano", queueName="q", storageClassName="fast"
    ),
    "mig": example_class("class-mig-1g.yaml"),
    "ingress": example_class(expose={"kind": "Ingress", "host": HOST, "ingressClassName": "nginx"}),
}


def written(class_key: str, **spec: Any) -> list[dict[str, Any]]:
    sandbox = make_sandbox(**spec)
    objs = [c.obj for c in desired_children(sandbox, CLASSES[class_key], ["ingress-nginx"])]
    owner = {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ExperimentSandbox",
        "metadata": {"name": sandbox.name, "namespace": sandbox.namespace, "uid": sandbox.uid},
    }
    kopf.adopt(objs, owner=kopf.Body(owner))
    return objs


CASES = [
    ("h100", {}),
    ("h100", {"suspend": True, "gpus": 0, "env": [{"name": "A", "value": "1"}]}),
    ("mig", {"gpus": 1, "resources": {"cpu": "500m", "memory": "8Gi"}}),
    ("ingress", {"storage": {"size": "1Ti"}}),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("class_key", "spec"), CASES)
def test_children_validate_upstream(version: str, class_key: str, spec: dict[str, Any]) -> None:
    objs = written(class_key, **spec)
    assert {o["kind"] for o in objs} >= {
        "StatefulSet",
        "Service",
        "PersistentVolumeClaim",
        "Secret",
        "NetworkPolicy",
    }
    for obj in objs:
        kubernetes_validate.validate(obj, version, strict=True)
        assert obj["metadata"]["ownerReferences"][0]["uid"] == make_sandbox().uid


def test_httproute_is_gateway_v1_shaped() -> None:
    # kubernetes-validate ships core schemas only; check the Gateway API v1 required fields.
    cls = example_class(expose={"kind": "HTTPRoute", "host": HOST, "gatewayName": "gw"})
    [route] = [
        c.obj for c in desired_children(make_sandbox(), cls, []) if c.obj["kind"] == "HTTPRoute"
    ]
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(route, VERSIONS[-1], strict=True)
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"][0]["name"] == "gw"
    backend = route["spec"]["rules"][0]["backendRefs"][0]
    assert set(backend) == {"name", "port"}
    assert isinstance(backend["port"], int)


def test_status_written_validates_against_the_crd() -> None:
    schema = openapi_schema(EXPERIMENT_SANDBOX)["properties"]["status"]
    pod = {
        "spec": {"nodeName": "n1"},
        "status": {
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.",
                }
            ]
        },
    }
    at = datetime(2026, 11, 26, tzinfo=UTC)
    status = derive_status(
        make_sandbox(),
        ExperimentSandboxStatus(),
        {"spec": {}},
        pod,
        url="http://nb.team-a.svc:8888/",
        at=at,
    )
    patch = status_patch(ExperimentSandboxStatus(), status)
    assert validate(schema, patch) == []
