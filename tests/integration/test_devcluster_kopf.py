"""Kopf against the embedded API with default watch settings: no reconnect storm.

The test runs in looptime's fast-forwarded loop time: two simulated minutes pass in about a
second, while requests travel over real loopback TLS sockets to the in-process server.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import kopf
import pytest

from sandboxer.devcluster.cluster import DevCluster
from tests.integration.conftest import ROOT

SANDBOX = {
    "apiVersion": "sandboxer.io/v1alpha1",
    "kind": "ExperimentSandbox",
    "metadata": {"name": "nb", "namespace": "default"},
    "spec": {"class": "h100", "gpus": 1},
}


@pytest.mark.looptime
async def test_kopf_handles_objects_and_keeps_its_watches(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with DevCluster() as cluster:
        cluster.load_crds(ROOT / "crds")
        registry = kopf.OperatorRegistry()
        seen: list[str] = []

        @kopf.on.login(registry=registry)
        def login(**_: Any) -> kopf.ConnectionInfo:
            return kopf.ConnectionInfo(
                server=cluster.url,
                token=cluster.token("admin"),
                ca_data=base64.b64encode(cluster.tls.ca_pem).decode(),
            )

        @kopf.on.create("sandboxer.io", "v1alpha1", "experimentsandboxes", registry=registry)
        def created(name: str, patch: kopf.Patch, **_: Any) -> None:
            seen.append(name)
            patch.status["phase"] = "Provisioning"

        stop: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        operator = asyncio.create_task(
            kopf.operator(
                registry=registry,
                clusterwide=True,
                standalone=True,
                stop_flag=stop,
                ready_flag=ready,
            )
        )
        await asyncio.wait_for(ready, timeout=30)
        await cluster.apply(SANDBOX)
        await asyncio.sleep(120)  # simulated: two minutes of steady state
        stop.set_result(None)
        await asyncio.wait_for(operator, timeout=30)

        obj = cluster.get("sandboxer.io/v1alpha1", "ExperimentSandbox", "nb", "default")
        assert seen == ["nb"]
        assert obj is not None
        assert obj["status"]["phase"] == "Provisioning"
        watches = cluster.request_count("watch", "experimentsandboxes")
        assert watches == 1, f"{watches} watch requests in two minutes"
        assert cluster.request_count("watch", "customresourcedefinitions") <= 1
    assert not [r for r in caplog.records if "inconsistencies" in r.getMessage()]
