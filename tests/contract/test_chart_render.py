"""The chart lints, renders with default and production values, and renders valid objects."""

from __future__ import annotations

import base64
import json
from typing import Any

import kubernetes_validate
import pytest
from cryptography import x509

from sandboxer.api.crdgen import openapi_schema
from sandboxer.api.kinds import by_kind
from sandboxer.api.validation import validate
from sandboxer.chargeback.settings import ExportSettings
from tests.contract.helm_chart import (
    CHART,
    NAMESPACE,
    PRODUCTION_APIS,
    PRODUCTION_VALUES,
    default_text,
    find,
    objects,
    production_text,
    run_helm,
    template_error,
    template_text,
)

KUBERNETES_VERSIONS = ("1.29.0", "1.35.0")
OUR_KINDS = {"SandboxClass", "ComputeBudget"}
# Custom kinds of other projects: kubernetes-validate only knows the built-in API.
FOREIGN_KINDS = {"ServiceMonitor", "PrometheusRule", "Certificate", "Issuer", "ClusterKopfPeering"}


def test_lint_strict_passes_with_default_and_production_values() -> None:
    for extra in ([], ["-f", str(PRODUCTION_VALUES)]):
        proc = run_helm("lint", "--strict", str(CHART), *extra)
        assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("render", [default_text, production_text], ids=["default", "production"])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_rendered_object_validates(render: Any, version: str) -> None:
    checked = 0
    for obj in objects(render()):
        kind = obj["kind"]
        if kind in OUR_KINDS:
            errors = validate(openapi_schema(by_kind(kind)), obj)
            assert not errors, f"{kind} {obj['metadata']['name']}: {errors}"
        elif kind in FOREIGN_KINDS:
            # No upstream schema to check against; the render tests below check their shape.
            assert obj["apiVersion"].split("/")[0] in (
                "monitoring.coreos.com",
                "cert-manager.io",
                "kopf.dev",
            )
        else:
            kubernetes_validate.validate(obj, version, strict=True)
        checked += 1
    assert checked >= 15


def test_default_render_has_no_optional_integrations() -> None:
    kinds = {o["kind"] for o in objects(default_text())}
    assert not kinds & (FOREIGN_KINDS | OUR_KINDS)
    assert {"Deployment", "DaemonSet", "MutatingWebhookConfiguration", "Secret"} <= kinds


def test_every_object_carries_the_standard_labels() -> None:
    for obj in objects(default_text()) + objects(production_text()):
        labels = obj["metadata"]["labels"]
        for key in ("name", "instance", "component", "version", "managed-by", "part-of"):
            assert f"app.kubernetes.io/{key}" in labels, (obj["kind"], key)


def test_single_operator_uses_recreate_and_kopf_liveness() -> None:
    deploy = find(objects(default_text()), "Deployment", "-operator")
    assert deploy["spec"]["strategy"] == {"type": "Recreate"}
    assert deploy["spec"]["replicas"] == 1
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert "--liveness=http://0.0.0.0:8080/healthz" in container["args"]
    assert not any(a.startswith("--peering") for a in container["args"])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"healthz": 8080, "metrics": 9090, "webhook": 9443}
    security = container["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    assert security["allowPrivilegeEscalation"] is False
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SANDBOXER_LOG_FORMAT"] == "json"
    assert env["SANDBOXER_LEDGER_URL"] == "file:///var/lib/sandboxer/ledger"
    # One party provides, produces and bills: the chart's default is the operator's own.
    assert env["SANDBOXER_EXPORT_PROVIDER_NAME"] == ExportSettings().provider_name
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["ledger"] == "/var/lib/sandboxer/ledger"


def test_production_operator_runs_in_peering_with_s3_and_irsa() -> None:
    objs = objects(production_text())
    deploy = find(objs, "Deployment", "-operator")
    assert deploy["spec"]["replicas"] == 2
    assert deploy["spec"]["strategy"]["type"] == "RollingUpdate"
    container = deploy["spec"]["template"]["spec"]["containers"][0]
    assert "--peering=sandboxer" in container["args"]
    assert find(objs, "ClusterKopfPeering")["metadata"]["name"] == "sandboxer"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["SANDBOXER_LEDGER_URL"] == "s3://acme-finops-sandboxer/ledger"
    assert env["SANDBOXER_EXPORT_SINK"] == "s3://acme-finops-sandboxer/focus"
    assert env["AWS_REGION"] == "eu-west-1"
    assert "ledger" not in {v["name"] for v in deploy["spec"]["template"]["spec"]["volumes"]}
    assert not [o for o in objs if o["kind"] == "PersistentVolumeClaim"]
    account = find(objs, "ServiceAccount", "-operator")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].endswith(
        "role/sandboxer-ledger"
    )


def test_credentials_secret_is_mounted_as_a_file_never_as_env() -> None:
    text = template_text(
        "--set", "ledger.url=s3://bucket/ledger", "--set", "ledger.s3.credentialsSecret=aws-keys"
    )
    deploy = find(objects(text), "Deployment", "-operator")
    pod = deploy["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["AWS_SHARED_CREDENTIALS_FILE"] == "/etc/sandboxer/aws/credentials"
    assert not [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    volume = next(v for v in pod["volumes"] if v["name"] == "aws-credentials")
    assert volume["secret"]["secretName"] == "aws-keys"


def _webhooks(objs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [
        (kind, config, hook)
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
        for config in [find(objs, kind)]
        for hook in config["webhooks"]
    ]


def test_webhooks_cover_sandbox_create_and_update_and_fail_closed() -> None:
    for kind, _, hook in _webhooks(objects(default_text())):
        assert hook["failurePolicy"] == "Fail"
        assert hook["sideEffects"] == "None"
        assert hook["admissionReviewVersions"] == ["v1"]
        assert 1 <= hook["timeoutSeconds"] <= 30
        assert hook["rules"] == [
            {
                "apiGroups": ["sandboxer.io"],
                "apiVersions": ["v1alpha1"],
                "resources": ["experimentsandboxes"],
                # Validated on DELETE too: nobody but the owner deletes a sandbox.
                "operations": ["CREATE", "UPDATE"]
                + (["DELETE"] if kind == "ValidatingWebhookConfiguration" else []),
                "scope": "Namespaced",
            }
        ]
        service = hook["clientConfig"]["service"]
        assert service["name"] == "sbx-sandboxer-webhook"
        assert service["namespace"] == NAMESPACE
        expected = "/sandbox-mutate" if kind.startswith("Mutating") else "/sandbox-validate"
        assert service["path"] == expected


def test_generated_ca_signs_the_serving_certificate_for_the_service() -> None:
    objs = objects(default_text())
    secret = find(objs, "Secret", "-webhook-tls")
    ca_pem = base64.b64decode(secret["data"]["ca.crt"])
    ca = x509.load_pem_x509_certificate(ca_pem)
    cert = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    cert.verify_directly_issued_by(ca)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert f"sbx-sandboxer-webhook.{NAMESPACE}.svc" in names.get_values_for_type(x509.DNSName)
    # Both configurations trust the same CA as the Secret (one generation per render).
    for _, _, hook in _webhooks(objs):
        assert base64.b64decode(hook["clientConfig"]["caBundle"]) == ca_pem


def test_cert_manager_issues_the_certificate_and_injects_the_ca() -> None:
    objs = objects(production_text())
    # No webhook TLS Secret from Helm (cert-manager writes it); the token key is Helm's own.
    secrets = [o["metadata"]["name"] for o in objs if o["kind"] == "Secret"]
    assert secrets == ["prod-sandboxer-operator-token-key"]
    certificate = find(objs, "Certificate")
    assert certificate["spec"]["secretName"] == "prod-sandboxer-webhook-tls"
    assert certificate["spec"]["issuerRef"]["name"] == find(objs, "Issuer")["metadata"]["name"]
    for _, config, hook in _webhooks(objs):
        inject = config["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        assert inject == f"{NAMESPACE}/{certificate['metadata']['name']}"
        assert "caBundle" not in hook["clientConfig"]


def test_agent_runs_on_gpu_nodes_with_host_pids_and_read_only_host_mounts() -> None:
    ds = find(objects(default_text()), "DaemonSet", "-agent")
    pod = ds["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["hostPID"] is True
    assert pod["runtimeClassName"] == "nvidia"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod[
        "tolerations"
    ]
    container = pod["containers"][0]
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for path in ("/var/lib/kubelet/pod-resources", "/host/proc"):
        assert mounts[path]["readOnly"] is True
    host_paths = {v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    assert host_paths == {"/var/lib/kubelet/pod-resources", "/proc"}
    node_name = next(e for e in container["env"] if e["name"] == "NODE_NAME")
    assert node_name["valueFrom"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    security = container["securityContext"]
    assert security["capabilities"]["drop"] == ["ALL"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["privileged"] is False
    # NVML sees every GPU through NVIDIA_VISIBLE_DEVICES; requesting one would take it away.
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})


def test_agent_values_are_honoured() -> None:
    text = template_text(
        "--set", "agent.runtimeClassName=", "--set-string", "agent.nodeSelector.gpu=yes"
    )
    pod = find(objects(text), "DaemonSet", "-agent")["spec"]["template"]["spec"]
    assert "runtimeClassName" not in pod
    assert pod["nodeSelector"]["gpu"] == "yes"
    assert not [
        o
        for o in objects(template_text("--set", "agent.enabled=false"))
        if o["kind"] == "DaemonSet"
    ]


def test_service_monitors_only_when_the_prometheus_operator_is_there() -> None:
    assert not [o for o in objects(default_text()) if o["kind"] == "ServiceMonitor"]
    monitors = [o for o in objects(production_text()) if o["kind"] == "ServiceMonitor"]
    assert len(monitors) == 2
    for monitor in monitors:
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_dashboard_configmap_holds_the_panels() -> None:
    cm = find(objects(default_text()), "ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(cm["data"]["sandboxer.json"])
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for topic in ("gpu-hours by team", "busy share", "reclaimed", "budget burn", "refusals"):
        assert topic in titles
    for panel in board["panels"]:
        for target in panel["targets"]:
            assert "sandboxer_" in target["expr"]


def test_default_objects_come_from_values() -> None:
    objs = objects(production_text())
    assert find(objs, "SandboxClass")["metadata"]["name"] == "h100"
    assert find(objs, "ComputeBudget")["spec"]["allowance"] == {"gpuHours": 2000}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "operator.replicas=2"], "needs operator.peering.enabled=true"),
        (
            ["--set", "operator.replicas=2", "--set", "operator.peering.enabled=true",
             "--api-versions", "kopf.dev/v1"],
            "needs an s3:// ledger.url",
        ),
        (["--set", "operator.peering.enabled=true"], "needs kopf's peering CRDs"),
        (["--set", "webhook.certManager.enabled=true"], "install cert-manager first"),
        (["--set", "ledger.url=http://example.com/x"], "/ledger/url"),
        (["--set", "webhook.timeoutSeconds=31"], "/webhook/timeoutSeconds"),
        (["--set", "operator.bogus=1"], "bogus"),
    ],
)  # fmt: skip
def test_bad_values_are_refused_with_a_clear_message(args: list[str], message: str) -> None:
    assert message in template_error(*args)


def _notes(*extra: str) -> str:
    proc = run_helm(
        "install", "sbx", str(CHART), "--namespace", NAMESPACE, "--dry-run=client", *extra
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split("NOTES:", 1)[1]


def test_notes_say_what_to_apply_next() -> None:
    notes = _notes()
    assert "kubectl apply -f examples/class-h100.yaml" in notes
    assert "kubectl apply -f examples/budget-team.yaml" in notes
    assert "--clusterrole=sandboxer-user" in notes
    assert "kubectl apply --server-side -f helm/sandboxer/crds/" in notes
    assert "sbx-sandboxer-webhook-tls" in notes


def test_notes_list_the_objects_the_release_created() -> None:
    # `helm install` takes no --api-versions: leave out what needs cert-manager and kopf's CRDs.
    notes = _notes(
        "-f", str(PRODUCTION_VALUES),
        "--set", "operator.replicas=1,operator.peering.enabled=false",
        "--set", "webhook.certManager.enabled=false",
    )  # fmt: skip
    assert "SandboxClasses created by this release: h100" in notes
    assert "ComputeBudgets created by this release: team-vision" in notes
    assert "FOCUS exports every 1h to s3://acme-finops-sandboxer/focus" in notes


def test_chart_crds_validate_as_kubernetes_objects() -> None:
    crds = [
        o
        for o in objects(template_text("--include-crds"))
        if o["kind"] == "CustomResourceDefinition"
    ]
    assert {c["spec"]["names"]["kind"] for c in crds} == {
        "ExperimentSandbox", "SandboxClass", "ComputeBudget", "GPUNodeReport", "RateCard"
    }  # fmt: skip
    for crd in crds:
        kubernetes_validate.validate(crd, KUBERNETES_VERSIONS[-1], strict=True)


APIS = tuple(arg for api in PRODUCTION_APIS for arg in ("--api-versions", api))


@pytest.mark.parametrize(
    "extra",
    [
        (),
        ("-f", str(PRODUCTION_VALUES), *APIS),
        ("--set", "webhook.certManager.enabled=true", "--api-versions", "cert-manager.io/v1"),
        (
            "--set",
            "webhook.namespaceSelector.matchLabels.team=ml",
            "--set",
            "webhook.timeoutSeconds=30",
        ),
    ],
    ids=["default", "production", "cert-manager", "selector"],
)
def test_no_values_turn_the_webhooks_fail_open(extra: tuple[str, ...]) -> None:
    """Fail-open admission lets sandboxes in unowned and unchecked; no value offers it."""
    hooks = _webhooks(objects(template_text(*extra)))
    assert len(hooks) == 2
    assert {hook["failurePolicy"] for _, _, hook in hooks} == {"Fail"}


@pytest.mark.parametrize("key", ["webhook.failurePolicy", "webhook.ignoreFailures"])
def test_a_failure_policy_value_is_refused_by_the_schema(key: str) -> None:
    error = template_error("--set", f"{key}=Ignore")
    assert key.split(".")[1] in error
