"""The Helm chart's values as one pydantic model: the source of values.yaml, its schema and docs.

`make chart` renders from this model the chart's `values.yaml` (defaults, commented with the
field descriptions), `values.schema.json` (which `helm lint` and `helm install` enforce) and the
values table in the chart README, so the three never disagree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from sandboxer.api.budget import ComputeBudgetSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import DNS1123_LABEL_PATTERN, Duration, Model, Quantity

PullPolicy = Literal["Always", "IfNotPresent", "Never"]
ExportFormat = Literal["parquet", "csv"]
Port = Annotated[int, Field(ge=1024, le=65535)]
Resources = dict[str, dict[str, str]]
LEDGER_URL_PATTERN = r"^(file:///.+|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?)$"


class Image(Model):
    """A container image; `digest` (sha256:...) wins over `tag` when set."""

    repository: str = Field(description="Image repository.")
    tag: str = Field("", description="Image tag; empty means the chart's appVersion.")
    digest: str = Field(
        "",
        pattern=r"^(sha256:[a-f0-9]{64})?$",
        description="Image digest (sha256:...); pins the exact image when set.",
    )
    pull_policy: PullPolicy = Field("IfNotPresent", description="imagePullPolicy.")


class Peering(Model):
    enabled: bool = Field(
        False,
        description="Run replicas in kopf peering (HA): one active, the others on standby. "
        "Needs kopf's ClusterKopfPeering CRD; each replica picks a random priority.",
    )
    name: str = Field(
        "sandboxer",
        pattern=DNS1123_LABEL_PATTERN,
        description="Name of the ClusterKopfPeering object the chart creates.",
    )


class ServiceAccount(Model):
    annotations: dict[str, str] = Field(
        default_factory=dict, description="Extra annotations on the ServiceAccount."
    )


def _operator_resources() -> Resources:
    return {
        "requests": {"cpu": "100m", "memory": "256Mi"},
        "limits": {"cpu": "1", "memory": "512Mi"},
    }


def _agent_resources() -> Resources:
    return {
        "requests": {"cpu": "50m", "memory": "64Mi"},
        "limits": {"cpu": "500m", "memory": "128Mi"},
    }


class OperatorValues(Model):
    image: Image = Field(
        default_factory=lambda: Image(repository="ghcr.io/sandboxer/operator"),
        description="Operator image.",
    )
    replicas: int = Field(
        1, ge=1, description="Replicas; more than one needs `operator.peering.enabled`."
    )
    peering: Peering = Field(default_factory=Peering, description="High availability.")
    lease_duration: Duration = Field(
        "15s",
        description="How long a silent leader keeps the accounting loop's Lease before a standby "
        "takes over (renew deadline and retry period scale with it).",
    )
    resources: Resources = Field(
        default_factory=_operator_resources, description="Container resources."
    )
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod nodeSelector.")
    tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Tolerations.")
    affinity: dict[str, Any] = Field(default_factory=dict, description="Pod affinity.")
    priority_class_name: str = Field("", description="Pod priorityClassName.")
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Pod annotations.")
    service_account: ServiceAccount = Field(
        default_factory=ServiceAccount, description="Operator ServiceAccount."
    )
    probe_port: Port = Field(8080, description="Port of kopf's /healthz liveness endpoint.")
    metrics_port: Port = Field(9090, description="Port of the Prometheus /metrics endpoint.")


class AgentValues(Model):
    enabled: bool = Field(True, description="Run the metering agent DaemonSet.")
    image: Image = Field(
        default_factory=lambda: Image(repository="ghcr.io/sandboxer/agent"),
        description="Agent image.",
    )
    node_selector: dict[str, str] = Field(
        default_factory=lambda: {"nvidia.com/gpu.present": "true"},
        description="Nodes the agent runs on: GPU nodes only (label set by GPU feature discovery).",
    )
    runtime_class_name: str = Field(
        "nvidia",
        description="RuntimeClass that injects NVML (NVIDIA container toolkit); empty for the "
        "node's default runtime.",
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=lambda: [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ],
        description="Tolerations for tainted GPU nodes.",
    )
    resources: Resources = Field(
        default_factory=_agent_resources, description="Container resources."
    )
    priority_class_name: str = Field("", description="Pod priorityClassName.")
    pod_annotations: dict[str, str] = Field(default_factory=dict, description="Pod annotations.")
    metrics_port: Port = Field(9400, description="Port of the agent's /metrics and /healthz.")
    sample_interval: Duration = Field("10s", description="How often NVML is sampled.")
    report_interval: Duration = Field(
        "30s", description="How often the node's GPUNodeReport is written."
    )


class CertManager(Model):
    enabled: bool = Field(
        False,
        description="Issue the webhook certificate with cert-manager (renewed automatically) "
        "instead of a CA generated by Helm.",
    )
    issuer_ref: dict[str, str] = Field(
        default_factory=dict,
        description="An existing issuer ({name, kind, group}); empty creates a self-signed "
        "Issuer for the release.",
    )
    duration: Duration = Field("2160h", description="Certificate lifetime.")
    renew_before: Duration = Field("360h", description="Renew this long before expiry.")


class WebhookValues(Model):
    port: Port = Field(9443, description="HTTPS port of the operator's admission webhooks.")
    timeout_seconds: int = Field(
        10, ge=1, le=30, description="How long the API server waits for an admission answer."
    )
    mutate_path: str = Field(
        "/sandbox-mutate",
        pattern=r"^/[a-z0-9./-]+$",
        description="URL path of the mutating webhook (the kopf handler id).",
    )
    validate_path: str = Field(
        "/sandbox-validate",
        pattern=r"^/[a-z0-9./-]+$",
        description="URL path of the validating webhook (the kopf handler id).",
    )
    namespace_selector: dict[str, Any] = Field(
        default_factory=dict, description="Limit the webhooks to matching namespaces."
    )
    cert_manager: CertManager = Field(default_factory=CertManager, description="cert-manager.")
    ca_validity_days: int = Field(
        3650, ge=1, description="Lifetime of the Helm-generated CA (without cert-manager)."
    )
    cert_validity_days: int = Field(
        365, ge=1, description="Lifetime of the Helm-generated serving certificate."
    )
    managed_by_operator: bool = Field(
        False,
        description="Let the operator (kopf) create the webhook configurations instead of the "
        "chart; grants it write access to webhook configurations.",
    )


class S3(Model):
    region: str = Field("", description="AWS region of the bucket.")
    endpoint: str = Field("", description="S3 endpoint URL for S3-compatible stores.")
    credentials_secret: str = Field(
        "",
        description="Secret with a `credentials` key in AWS shared-credentials format, "
        "mounted as a file. Leave empty with IRSA.",
    )
    role_arn: str = Field(
        "",
        description="IAM role for IRSA: set as `eks.amazonaws.com/role-arn` on the operator's "
        "ServiceAccount.",
    )


class Persistence(Model):
    size: Quantity = Field("10Gi", description="Size of the ledger volume (file:// ledgers).")
    storage_class_name: str = Field("", description="StorageClass; empty for the default.")


class LedgerValues(Model):
    url: str = Field(
        "file:///var/lib/sandboxer/ledger",
        pattern=LEDGER_URL_PATTERN,
        description="Where closed usage hours are written: file:///... on a volume the chart "
        "creates, or s3://bucket/prefix.",
    )
    persistence: Persistence = Field(default_factory=Persistence, description="Ledger volume.")
    s3: S3 = Field(default_factory=S3, description="S3 settings for s3:// ledger and export.")


def _all_formats() -> list[ExportFormat]:
    return ["parquet", "csv"]


class ExportValues(Model):
    enabled: bool = Field(True, description="Write FOCUS chargeback files on a schedule.")
    sink: str = Field(
        "",
        pattern=r"^((file:///|s3://).+)?$",
        description="Where the FOCUS files go (file:///... or s3://bucket/prefix); empty "
        "writes under the ledger location.",
    )
    interval: Duration = Field("1h", description="How often the open period is re-exported.")
    formats: list[ExportFormat] = Field(
        default_factory=_all_formats, min_length=1, description="File formats."
    )
    provider_name: str = Field(
        "Platform Engineering",
        min_length=1,
        description="Who provides, produces and bills the GPU service: the FOCUS ProviderName, "
        "PublisherName and InvoiceIssuerName (one party for internal chargeback).",
    )


class ServiceMonitor(Model):
    enabled: bool = Field(
        True, description="Create ServiceMonitors when the Prometheus Operator CRDs exist."
    )
    interval: Duration = Field("30s", description="Scrape interval.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels your Prometheus selects ServiceMonitors by."
    )


class GrafanaDashboard(Model):
    enabled: bool = Field(True, description="Ship the Grafana dashboard ConfigMap.")
    labels: dict[str, str] = Field(
        default_factory=lambda: {"grafana_dashboard": "1"},
        description="Labels Grafana's dashboard sidecar looks for.",
    )


class PrometheusRule(Model):
    enabled: bool = Field(
        True,
        description="Create the PrometheusRule (stale agents, reconcile errors, budget "
        "forecast) when the Prometheus Operator CRDs exist.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels your Prometheus selects rules by."
    )


class MonitoringValues(Model):
    service_monitor: ServiceMonitor = Field(
        default_factory=ServiceMonitor, description="Prometheus Operator ServiceMonitors."
    )
    prometheus_rule: PrometheusRule = Field(
        default_factory=PrometheusRule, description="Prometheus Operator alert rules."
    )
    grafana_dashboard: GrafanaDashboard = Field(
        default_factory=GrafanaDashboard, description="Grafana dashboard ConfigMap."
    )


class RbacValues(Model):
    user_roles: bool = Field(
        True,
        description="Create the sandboxer-user and sandboxer-viewer ClusterRoles to bind per "
        "team namespace (aggregated into the built-in edit and view roles).",
    )


class NetworkPolicyValues(Model):
    enabled: bool = Field(
        True,
        description="NetworkPolicies that admit only the webhook, probe and metrics ports to "
        "the operator and agent pods (egress stays open: API server, S3).",
    )
    metrics_from: list[dict[str, Any]] = Field(
        default_factory=list,
        description="NetworkPolicy peers allowed to scrape metrics; empty allows any.",
    )


class SandboxClassValue(Model):
    name: str = Field(pattern=DNS1123_LABEL_PATTERN, description="SandboxClass name.")
    spec: dict[str, Any] = Field(description="A SandboxClass spec.")

    @field_validator("spec")
    @classmethod
    def _valid_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        SandboxClassSpec.model_validate(spec)
        return spec


class ComputeBudgetValue(Model):
    name: str = Field(pattern=DNS1123_LABEL_PATTERN, description="ComputeBudget name.")
    spec: dict[str, Any] = Field(description="A ComputeBudget spec.")

    @field_validator("spec")
    @classmethod
    def _valid_spec(cls, spec: dict[str, Any]) -> dict[str, Any]:
        ComputeBudgetSpec.model_validate(spec)
        return spec


class ChartValues(Model):
    """Values of the `sandboxer` Helm chart."""

    name_override: str = Field("", description="Replaces the chart name in resource names.")
    fullname_override: str = Field("", description="Replaces the release-chart name entirely.")
    image_pull_secrets: list[dict[str, str]] = Field(
        default_factory=list, description="Pull secrets for both images ([{name: ...}])."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of the operator and agent (JSON logs)."
    )
    operator: OperatorValues = Field(
        default_factory=OperatorValues, description="The operator Deployment (kopf)."
    )
    agent: AgentValues = Field(
        default_factory=AgentValues, description="The metering agent DaemonSet on GPU nodes."
    )
    webhook: WebhookValues = Field(
        default_factory=WebhookValues,
        description="Admission webhooks for ExperimentSandboxes and their TLS certificate.",
    )
    ledger: LedgerValues = Field(
        default_factory=LedgerValues, description="Where usage is recorded (the ledger)."
    )
    export: ExportValues = Field(
        default_factory=ExportValues, description="FOCUS chargeback exports."
    )
    monitoring: MonitoringValues = Field(
        default_factory=MonitoringValues, description="Prometheus and Grafana integration."
    )
    rbac: RbacValues = Field(default_factory=RbacValues, description="Per-team roles.")
    network_policy: NetworkPolicyValues = Field(
        default_factory=NetworkPolicyValues, description="NetworkPolicies for the chart's pods."
    )
    sandbox_classes: list[SandboxClassValue] = Field(
        default_factory=list,
        description="SandboxClass objects to create (opt-in; see examples/class-*.yaml).",
    )
    compute_budgets: list[ComputeBudgetValue] = Field(
        default_factory=list,
        description="ComputeBudget objects to create (opt-in; see examples/budget-*.yaml).",
    )
