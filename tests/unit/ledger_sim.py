"""A tiny simulated metering agent for accounting tests: monotonic counters, epochs, reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sandboxer.api.nodereport import GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.ledger.accounting import SandboxRef


def ref(
    uid: str, *, weight: float = 1.0, model: str = "H100", mig: str | None = None
) -> SandboxRef:
    return SandboxRef(
        uid=uid,
        name=f"sb-{uid}",
        namespace="ml",
        owner="alice",
        team="vision",
        cost_center="cc-1",
        sandbox_class="h100",
        gpu_model=model,
        mig_profile=mig,
        billing_weight=weight,
        budget="team-vision",
    )


@dataclass
class SimAgent:
    """Counters per (pod UID, GPU UUID); a restart begins a new epoch with counters from zero."""

    node: str
    epoch_no: int = 0
    sequence: int = 0
    counters: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    pods: dict[str, list[str]] = field(default_factory=dict)  # pod uid -> GPU UUIDs

    @property
    def epoch(self) -> str:
        return f"{self.node}-e{self.epoch_no}"

    def use(self, pod: str, gpus: list[str], seconds: float, utilization: float) -> None:
        self.pods.setdefault(pod, gpus)
        for gpu in gpus:
            c = self.counters.setdefault((pod, gpu), [0.0, 0.0, 0.0])
            c[0] += seconds
            c[1] += seconds * utilization
            c[2] += seconds * 300.0 * (0.2 + utilization)

    def restart(self) -> None:
        self.epoch_no += 1
        self.sequence = 0
        self.counters.clear()
        self.pods.clear()

    def report(self, at: datetime) -> GPUNodeReportStatus:
        self.sequence += 1
        pods = [
            PodReport(
                uid=pod,
                namespace="ml",
                name=f"pod-{pod}",
                gpus=[
                    PodGPUCounters(
                        uuid=gpu,
                        allocated_seconds=self.counters[(pod, gpu)][0],
                        busy_seconds=self.counters[(pod, gpu)][1],
                        energy_joules=self.counters[(pod, gpu)][2],
                    )
                    for gpu in gpus
                ],
            )
            for pod, gpus in sorted(self.pods.items())
        ]
        return GPUNodeReportStatus(
            node=self.node, epoch=self.epoch, sequence=self.sequence, reported_at=at, pods=pods
        )
