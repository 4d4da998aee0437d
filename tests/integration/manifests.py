"""The cluster-scoped objects playground tests apply as admin, built one way."""

from __future__ import annotations

import json
from typing import Any

NOTEBOOK_IMAGE = "quay.io/jupyter/pytorch-notebook:cuda12-2024-10-28"


def sandbox_class(name: str, **spec: Any) -> str:
    """A SandboxClass on H100s with `spec` on top (camelCase keys, as kubectl takes them)."""
    body = {"image": NOTEBOOK_IMAGE, "gpu": {"model": "H100"}, **spec}
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "SandboxClass",
            "metadata": {"name": name},
            "spec": body,
        }
    )


def compute_budget(name: str, users: list[str] | None = None, **spec: Any) -> dict[str, Any]:
    """A ComputeBudget for `users` (or the `subjects` given in `spec`)."""
    subjects = [{"kind": "User", "name": u} for u in users or []]
    return {
        "apiVersion": "sandboxer.io/v1alpha1",
        "kind": "ComputeBudget",
        "metadata": {"name": name},
        "spec": {"subjects": subjects, **spec} if subjects else spec,
    }


def busy_sandbox(name: str, utilization: int, cls: str = "h100", gpus: int = 1) -> str:
    """An ExperimentSandbox whose simulated GPUs run at `utilization` percent."""
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ExperimentSandbox",
            "metadata": {
                "name": name,
                "annotations": {"sim.sandboxer.io/gpu-utilization": str(utilization)},
            },
            "spec": {"class": cls, "gpus": gpus},
        }
    )
