"""Declares the kinds the metering tests need on kmock's KubernetesEmulator."""

from __future__ import annotations

from typing import Any

REPORTS = "sandboxer.io/v1alpha1/gpunodereports"


def declare(kmock: Any) -> None:
    kmock.resources[REPORTS] = {
        "kind": "GPUNodeReport", "singular": "gpunodereport", "namespaced": False,
        "verbs": ["get", "list", "watch", "create", "patch"], "subresources": ["status"],
        "shortnames": [], "categories": [],
    }  # fmt: skip
    kmock.resources["v1/pods"] = {
        "kind": "Pod", "singular": "pod", "namespaced": True, "verbs": ["get", "list"],
        "subresources": [], "shortnames": [], "categories": [],
    }  # fmt: skip
