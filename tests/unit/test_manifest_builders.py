"""Pure builders: the exact manifests for a known sandbox and class."""

from __future__ import annotations

import base64
import re

import pytest

from sandboxer.manifests.exposure import build_exposure, exposure_url
from sandboxer.manifests.inputs import scale_quantity
from sandboxer.manifests.labels import label_safe, sandbox_labels
from sandboxer.manifests.networkpolicy import build_network_policy
from sandboxer.manifests.secret import build_secret, new_token
from sandboxer.manifests.service import build_service
from sandboxer.manifests.statefulset import build_statefulset, spec_hash
from sandboxer.manifests.storage import build_pvc, pvc_resize_patch
from tests.sandbox_fixtures import example_class, make_sandbox

LABELS = {
    "app.kubernetes.io/name": "sandboxer-notebook",
    "sandboxer.io/sandbox": "nb",
    "app.kubernetes.io/instance": "nb",
    "app.kubernetes.io/component": "notebook",
    "app.kubernetes.io/part-of": "sandboxer",
    "app.kubernetes.io/managed-by": "sandboxer",
    "sandboxer.io/class": "h100",
    "sandboxer.io/owner": label_safe("alice@example.com"),
}


def test_labels_are_complete_and_owner_is_label_safe() -> None:
    assert sandbox_labels("nb", "alice@example.com", "h100") == LABELS
    assert LABELS["sandboxer.io/owner"].startswith("alice-example.com-")
    assert label_safe("alice") == "alice"
    assert label_safe("a@b") != label_safe("a.b")
    assert len(label_safe("x" * 300)) <= 63
    for name in ("system:serviceaccount:ns:sa", "-x-", "@@", "x" * 300, "Bob.Smith"):
        assert re.fullmatch(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?", label_safe(name))
        assert len(label_safe(name)) <= 63


@pytest.mark.parametrize(
    ("quantity", "factor", "expected"),
    [
        ("8", 2, "16"),
        ("64Gi", 2, "128Gi"),
        ("500m", 3, "1500m"),
        ("1.5", 2, "3"),
        ("1e3", 2, "2000"),
    ],
)
def test_scale_quantity(quantity: str, factor: int, expected: str) -> None:
    assert scale_quantity(quantity, factor) == expected


def test_statefulset_requests_gpus_and_class_defaults_per_gpu() -> None:
    sts = build_statefulset(make_sandbox(), example_class())
    assert sts["metadata"] == {"name": "nb", "namespace": "team-a", "labels": LABELS}
    spec = sts["spec"]
    assert spec["replicas"] == 1
    assert spec["selector"] == {
        "matchLabels": {
            "app.kubernetes.io/name": "sandboxer-notebook",
            "sandboxer.io/sandbox": "nb",
        }
    }
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"] == {
        "requests": {"cpu": "16", "memory": "128Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "128Gi", "nvidia.com/gpu": "2"},
    }
    assert container["image"] == "quay.io/jupyter/pytorch-notebook:cuda12-2024-10-28"
    assert container["readinessProbe"]["httpGet"] == {"path": "/api", "port": "http"}
    assert "--ServerApp.base_url=/" in container["args"]
    assert container["env"][0] == {
        "name": "JUPYTER_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "nb-token", "key": "token"}},
    }
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["volumes"][0] == {
        "name": "workspace",
        "persistentVolumeClaim": {"claimName": "nb-workspace"},
    }
    assert "priorityClassName" not in pod
    assert "schedulerName" not in pod


def test_statefulset_scheduling_options_and_kueue_label() -> None:
    cls = example_class(
        priorityClassName="gpu-interactive", schedulerName="volcano", queueName="team-a-queue"
    )
    sts = build_statefulset(make_sandbox(), cls)
    pod = sts["spec"]["template"]
    assert pod["spec"]["priorityClassName"] == "gpu-interactive"
    assert pod["spec"]["schedulerName"] == "volcano"
    assert sts["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-queue"
    assert pod["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a-queue"


def test_mig_class_requests_its_mig_resource() -> None:
    sts = build_statefulset(
        make_sandbox(**{"class": "mig-1g", "gpus": 1}), example_class("class-mig-1g.yaml")
    )
    requests = sts["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert [k for k in requests if k.startswith("nvidia.com/")] == [
        example_class("class-mig-1g.yaml").gpu.resource_name
    ]


def test_suspended_sandbox_has_zero_replicas_and_cpu_only_sandbox_no_gpu() -> None:
    assert build_statefulset(make_sandbox(suspend=True), example_class())["spec"]["replicas"] == 0
    cpu_only = build_statefulset(make_sandbox(gpus=0), example_class())
    requests = cpu_only["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]
    assert requests == {"cpu": "8", "memory": "64Gi"}


def test_explicit_resources_and_user_env_but_not_reserved_env() -> None:
    sb = make_sandbox(
        resources={"cpu": "4", "memory": "32Gi"},
        env=[{"name": "A", "value": "1"}, {"name": "JUPYTER_TOKEN", "value": "x"}],
    )
    container = build_statefulset(sb, example_class())["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"]["cpu"] == "4"
    assert container["resources"]["limits"]["memory"] == "32Gi"
    names = [e["name"] for e in container["env"]]
    assert names == ["JUPYTER_TOKEN", "HOME", "A"]


def test_spec_hash_rolls_on_gpus_image_resources_env_only() -> None:
    cls = example_class()
    base = spec_hash(make_sandbox(), cls)
    assert spec_hash(make_sandbox(), cls) == base
    assert spec_hash(make_sandbox(suspend=True), cls) == base  # suspend does not roll
    assert spec_hash(make_sandbox(storage={"size": "200Gi"}), cls) == base
    for changed in (
        {"gpus": 3},
        {"image": "quay.io/jupyter/base-notebook"},
        {"resources": {"cpu": "2"}},
        {"env": [{"name": "A", "value": "1"}]},
    ):
        assert spec_hash(make_sandbox(**changed), cls) != base, changed


def test_pvc_uses_size_and_class_and_only_grows_by_patch() -> None:
    cls = example_class(storageClassName="fast-ssd")
    pvc = build_pvc(make_sandbox(storage={"size": "200Gi"}), cls)
    assert pvc["metadata"]["name"] == "nb-workspace"
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": "200Gi"}},
        "storageClassName": "fast-ssd",
    }
    assert build_pvc(make_sandbox(), example_class())["spec"]["resources"]["requests"] == {
        "storage": "100Gi"
    }
    assert pvc_resize_patch(make_sandbox(storage={"size": "300Gi"}), cls) == {
        "spec": {"resources": {"requests": {"storage": "300Gi"}}}
    }


def test_secret_holds_a_random_32_byte_token() -> None:
    first, second = new_token(), new_token()
    assert first != second
    assert len(base64.urlsafe_b64decode(first + "=")) == 32
    secret = build_secret(make_sandbox(), first)
    assert secret["metadata"]["name"] == "nb-token"
    assert base64.b64decode(secret["data"]["token"]).decode() == first
    assert secret["type"] == "Opaque"


def test_service_and_network_policy() -> None:
    svc = build_service(make_sandbox())
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 8888, "targetPort": "http", "protocol": "TCP"}
    ]
    netpol = build_network_policy(make_sandbox(), ["ingress-nginx", "gateway"])
    assert netpol["spec"]["policyTypes"] == ["Ingress"]
    peers = netpol["spec"]["ingress"][0]["from"]
    # No podSelector peer: neighbours' pods in the namespace are not admitted (issue 17.6).
    assert peers == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}},
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway"}}},
    ]
    # The operator's namespace too: its loop asks each notebook's /api/status.
    with_operator = build_network_policy(make_sandbox(), ["ingress-nginx"], "sandboxer-system")
    assert with_operator["spec"]["ingress"][0]["from"][-1] == {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "sandboxer-system"}}
    }


def test_exposure_only_when_the_class_asks() -> None:
    assert build_exposure(make_sandbox(), example_class()) is None
    host = "{name}.{namespace}.nb.example.com"
    ing = build_exposure(
        make_sandbox(),
        example_class(expose={"kind": "Ingress", "host": host, "ingressClassName": "nginx"}),
    )
    assert ing is not None
    assert ing["kind"] == "Ingress"
    assert ing["spec"]["rules"][0]["host"] == "nb.team-a.nb.example.com"
    assert ing["spec"]["ingressClassName"] == "nginx"
    route_cls = example_class(
        expose={"kind": "HTTPRoute", "host": host, "gatewayName": "gw", "gatewayNamespace": "infra"}
    )
    route = build_exposure(make_sandbox(), route_cls)
    assert route is not None
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "gw", "namespace": "infra"}]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "nb", "port": 8888}]
    assert exposure_url(make_sandbox(), route_cls) == "https://nb.team-a.nb.example.com/"
