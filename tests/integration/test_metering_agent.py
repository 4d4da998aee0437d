"""The agent end to end: simulated NVML, a fake kubelet on a unix socket, a fake /proc, and the
GPUNodeReport written to the embedded API server over HTTPS. Time is an injected clock."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.metering.agent import Agent, AgentConfig
from sandboxer.metering.cgroups import CgroupResolver
from sandboxer.metering.podresources.client import PodResourcesClient
from sandboxer.metering.podresources.fake_kubelet import FakeKubelet
from sandboxer.metering.podresources.model import pods_from_map
from sandboxer.metering.probe import (
    NVML_ERROR_DRIVER_NOT_LOADED,
    NVML_ERROR_GPU_IS_LOST,
    ProcessSample,
)
from sandboxer.metering.publisher import KubeHTTP, NodePods, NodeReportPublisher
from sandboxer.metering.simulated import SimulatedNVML, make_gpus
from tests.integration.metering_api import kube_http, put_pod, report, reports_cluster

ALICE_UID = "aaaaaaaa-0000-4000-8000-000000000001"
BOB_UID = "bbbbbbbb-0000-4000-8000-000000000002"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    # Alice's notebook process, as the host's /proc shows it (cgroup v2, systemd driver).
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(
        "0::/kubepods.slice/kubepods-burstable.slice/"
        f"kubepods-burstable-pod{ALICE_UID.replace('-', '_')}.slice/cri-containerd-1.scope\n"
    )
    return tmp_path


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with reports_cluster() as cluster:
        for name, uid in (("alice-nb-0", ALICE_UID), ("bob-nb-0", BOB_UID)):
            put_pod(cluster, name, uid)
        yield cluster


@pytest.fixture
async def api(cluster: DevCluster) -> AsyncIterator[KubeHTTP]:
    http = kube_http(cluster)
    yield http
    await http.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sim(clock: Clock) -> SimulatedNVML:
    return SimulatedNVML(make_gpus(3, node="node-a", migs_per_gpu=0), clock=clock.seconds)


@pytest.fixture
async def kubelet(sim: SimulatedNVML) -> AsyncIterator[FakeKubelet]:
    uuids = [g.uuid for g in sim.gpus]
    fake = FakeKubelet(
        pods_from_map(
            {
                ("team", "alice-nb-0"): {"nvidia.com/gpu": uuids[:2]},
                ("team", "bob-nb-0"): {"nvidia.com/gpu": uuids[2:]},
            }
        )
    )
    with tempfile.TemporaryDirectory(prefix="kubelet-") as path:
        await fake.start(f"{path}/kubelet.sock")
        yield fake
        await fake.stop()


@pytest.fixture
async def make_agent(
    sim: SimulatedNVML, kubelet: FakeKubelet, api: KubeHTTP,
    proc_root: Path, clock: Clock,
) -> AsyncIterator[Any]:  # fmt: skip
    clients: list[PodResourcesClient] = []

    def make() -> Agent:
        assert kubelet.socket_path
        client = PodResourcesClient(kubelet.socket_path, timeout=5)
        clients.append(client)
        return Agent(
            AgentConfig(node="node-a", sample_interval=10, report_interval=30),
            backend=sim,
            kubelet=client,
            publisher=NodeReportPublisher(api, "node-a"),
            pods=NodePods(api, "node-a"),
            cgroups=CgroupResolver(proc_root),
            clock=clock,
        )

    yield make
    for client in clients:
        await client.close()


async def run_for(agent: Agent, clock: Clock, seconds: int) -> None:
    """Sample every 10 s and report every 30 s of simulated time."""
    for step in range(seconds // 10):
        clock.advance(10)
        await agent.tick()
        if step % 3 == 2:
            await agent.report()


def stored(cluster: DevCluster) -> dict[str, Any]:
    got = report(cluster, "node-a")
    assert got is not None, "no GPUNodeReport for node-a"
    return dict(got["status"])


async def test_counters_attributed_to_pods_and_published(
    make_agent: Any, sim: SimulatedNVML, cluster: DevCluster, clock: Clock
) -> None:
    g0, g1, g2 = (g.uuid for g in sim.gpus)
    sim.set_utilization(g0, 50.0)
    sim.set_processes(g0, [ProcessSample(pid=4242, used_memory_bytes=3 * 2**30)])
    agent = make_agent()
    await agent.tick()
    await run_for(agent, clock, 60)

    status = stored(cluster)
    assert status["epoch"] == agent.epoch
    assert status["sequence"] == 2
    pods = {p["name"]: p for p in status["pods"]}
    alice, bob = pods["alice-nb-0"], pods["bob-nb-0"]
    assert alice["uid"] == ALICE_UID
    assert bob["uid"] == BOB_UID
    by_gpu = {g["uuid"]: g for g in alice["gpus"]}
    assert by_gpu[g0]["allocatedSeconds"] == 60.0
    assert by_gpu[g0]["busySeconds"] == 30.0
    assert by_gpu[g0]["peakMemoryBytes"] == 3 * 2**30
    assert by_gpu[g0]["energyJoules"] == pytest.approx((70 + 630 * 0.5) * 60, rel=1e-3)
    assert by_gpu[g0]["lastActiveAt"].startswith("2026-03-01T12:01:00")
    assert by_gpu[g1]["busySeconds"] == 0.0
    assert "lastActiveAt" not in by_gpu[g1]
    assert bob["gpus"][0]["uuid"] == g2
    conditions = {c["type"]: c["status"] for c in status["conditions"]}
    assert conditions == {"NVMLAvailable": "True", "PodResourcesAvailable": "True",
                          "GPUsHealthy": "True"}  # fmt: skip
    # One status write per report whatever the pod count; the first report also found no
    # object (a 404 patch) and created it.
    assert agent.publisher.writes == agent.reports + 2


async def test_pod_uid_from_process_cgroups_without_the_api(
    make_agent: Any, sim: SimulatedNVML, cluster: DevCluster, clock: Clock
) -> None:
    g0 = sim.gpus[0].uuid
    sim.set_processes(g0, [ProcessSample(pid=4242, used_memory_bytes=2**30)])
    agent = make_agent()
    agent.pods = None  # no RBAC to list pods, say
    await agent.tick()
    await run_for(agent, clock, 30)
    uids = {p["name"]: p["uid"] for p in stored(cluster)["pods"]}
    assert uids == {"alice-nb-0": ALICE_UID, "bob-nb-0": ""}  # bob has no process to ask


async def test_lost_gpu_nvml_outage_and_restart(
    make_agent: Any, sim: SimulatedNVML, kubelet: FakeKubelet, cluster: DevCluster, clock: Clock
) -> None:
    g0, _, g2 = (g.uuid for g in sim.gpus)
    sim.set_utilization(g2, 100.0)
    agent = make_agent()
    await agent.tick()
    await run_for(agent, clock, 30)
    sim.inject_error(NVML_ERROR_GPU_IS_LOST, g2)
    await run_for(agent, clock, 30)
    status = stored(cluster)
    lost = next(g for g in status["gpus"] if g["uuid"] == g2)
    assert lost["state"] == "Lost"
    healthy = next(c for c in status["conditions"] if c["type"] == "GPUsHealthy")
    assert (healthy["status"], healthy["reason"]) == ("False", "GPULost")
    bob = next(p for p in status["pods"] if p["name"] == "bob-nb-0")
    assert bob["gpus"][0]["allocatedSeconds"] == 30.0  # nothing credited while lost

    sim.clear_error(g2)
    sim.inject_error(NVML_ERROR_DRIVER_NOT_LOADED)
    await run_for(agent, clock, 30)  # no crash; the report says why
    nvml = next(c for c in stored(cluster)["conditions"] if c["type"] == "NVMLAvailable")
    assert (nvml["status"], nvml["reason"]) == ("False", "DriverNotLoaded")

    # The pod leaves: it stays in reports for a while (final counters), then is dropped.
    sim.clear_error()
    kubelet.set_pods(pods_from_map({("team", "alice-nb-0"): {"nvidia.com/gpu": [g0]}}))
    await run_for(agent, clock, 30)
    assert {p["name"] for p in stored(cluster)["pods"]} == {"alice-nb-0", "bob-nb-0"}
    await run_for(agent, clock, 60)
    assert {p["name"] for p in stored(cluster)["pods"]} == {"alice-nb-0"}

    restarted = make_agent()
    await restarted.tick()
    await restarted.report()
    status = stored(cluster)
    assert status["epoch"] == restarted.epoch != agent.epoch
    assert status["sequence"] == 1
    assert status["pods"][0]["gpus"][0]["allocatedSeconds"] == 0.0


async def test_metrics_and_healthz(make_agent: Any, sim: SimulatedNVML, clock: Clock) -> None:
    sim.set_utilization(sim.gpus[0].uuid, 75.0)
    agent = make_agent()
    await agent.tick()
    await run_for(agent, clock, 30)
    async with TestClient(TestServer(agent.app())) as http:
        text = await (await http.get("/metrics")).text()
        assert (await http.get("/healthz")).status == 200
        clock.advance(31)  # no sample for more than three intervals
        assert (await http.get("/healthz")).status == 503
    g0 = sim.gpus[0].uuid
    assert f'sandboxer_gpu_utilization{{GPU_I_PROFILE="",UUID="{g0}",gpu="0"' in text
    line = next(x for x in text.splitlines()
                if x.startswith("sandboxer_gpu_busy_seconds_total") and g0 in x)  # fmt: skip
    assert 'pod="alice-nb-0"' in line
    assert line.endswith(" 22.5")
    assert "sandboxer_agent_api_writes_total 3.0" in text


async def test_run_loop_samples_and_reports_on_its_own(
    make_agent: Any, cluster: DevCluster, unused_tcp_port: int
) -> None:
    agent = make_agent()
    agent.clock = lambda: datetime.now(UTC)
    agent.config = AgentConfig(node="node-a", sample_interval=0.05, report_interval=0.1,
                               metrics_host="127.0.0.1", metrics_port=unused_tcp_port)  # fmt: skip
    task = asyncio.create_task(agent.run())
    try:
        async with asyncio.timeout(10):
            while agent.reports < 3:  # noqa: ASYNC110 - a condition polled under a timeout
                await asyncio.sleep(0.01)
            async with TestClient(TestServer(agent.app())) as http:
                assert (await http.get("/healthz")).status == 200
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert stored(cluster)["sequence"] >= 3
