"""The publisher and pod lookup against the embedded API server over HTTPS."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from sandboxer.api.nodereport import GPUNodeReportStatus, PodGPUCounters, PodReport
from sandboxer.devcluster.cluster import DevCluster
from sandboxer.metering.publisher import KubeAPIError, KubeHTTP, NodePods, NodeReportPublisher
from tests.integration.metering_api import kube_http, report, reports_cluster, writes

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with reports_cluster() as cluster:
        yield cluster


@pytest.fixture
async def api(cluster: DevCluster) -> AsyncIterator[KubeHTTP]:
    http = kube_http(cluster)
    yield http
    await http.close()


def status(pods: int, sequence: int) -> GPUNodeReportStatus:
    return GPUNodeReportStatus(
        node="node-a",
        epoch="e1",
        sequence=sequence,
        reported_at=T0,
        pods=[
            PodReport(
                uid=f"uid-{i}",
                namespace="team",
                name=f"nb-{i}",
                gpus=[PodGPUCounters(uuid=f"GPU-{i}", allocated_seconds=sequence * 30.0)],
            )
            for i in range(pods)
        ],
    )


async def test_one_write_per_interval_regardless_of_pod_count(
    cluster: DevCluster, api: KubeHTTP
) -> None:
    publisher = NodeReportPublisher(api, "node-a")
    await publisher.publish(status(pods=50, sequence=1))
    # First report: the status patch finds nothing, creates the object, patches again.
    path = "/apis/sandboxer.io/v1alpha1/gpunodereports"
    assert writes(cluster.http.log) == [
        f"PATCH {path}/node-a/status",
        f"POST {path}",
        f"PATCH {path}/node-a/status",
    ]
    for sequence in (2, 3, 4):
        await publisher.publish(status(pods=50 if sequence < 4 else 1, sequence=sequence))
    assert len(writes(cluster.http.log)) == 3 + 3
    assert publisher.writes == 6

    stored = report(cluster, "node-a")
    assert stored is not None
    assert stored["metadata"]["name"] == "node-a"
    assert stored["status"]["sequence"] == 4
    # A merge patch replaces lists: pods that left are gone from the report.
    assert [p["name"] for p in stored["status"]["pods"]] == ["nb-0"]
    assert stored["status"]["pods"][0]["gpus"][0]["allocatedSeconds"] == 120.0


async def test_pod_uids_on_this_node(cluster: DevCluster, api: KubeHTTP) -> None:
    uids = {}
    for name, node in (("nb-0", "node-a"), ("nb-1", "node-b")):
        body = {"apiVersion": "v1", "kind": "Pod",
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nb"}]},
                "metadata": {"name": name, "namespace": "team"}}  # fmt: skip
        created = await api.request("POST", "/api/v1/namespaces/team/pods", body)
        uids[name] = created["metadata"]["uid"]  # assigned by the API server
    directory = NodePods(api, "node-a")
    assert await directory.uids() == {("team", "nb-0"): uids["nb-0"]}
    assert directory.reads == 1


async def test_api_errors_are_raised_with_their_status(api: KubeHTTP) -> None:
    with pytest.raises(KubeAPIError, match="answered 404") as info:
        await api.request("GET", "/apis/sandboxer.io/v1alpha1/gpunodereports/absent")
    assert info.value.status == 404
