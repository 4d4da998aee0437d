"""Leader election on a real Lease, over HTTP against the embedded API (kube-apiserver's rules:
resourceVersion preconditions on PUT, 409 to the loser).

The candidates' clocks are injected, so expiry is decided without waiting; the API's answers
(and who wins a race) are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import kopf
import pytest

from sandboxer.controller.kube import KubeClient
from sandboxer.controller.leader import LEASE_API, LeaderElector, LeaseTimings
from sandboxer.devcluster.cluster import DevCluster

TIMINGS = LeaseTimings(duration=15.0, renew_deadline=10.0, retry_period=2.0)


class Candidate:
    """One replica: an elector on its own client and clock, and a log of its terms."""

    def __init__(self, cluster: DevCluster, name: str) -> None:
        self.now = 0.0
        self.terms: list[str] = []
        self.kube = KubeClient(
            kopf.ConnectionInfo(
                server=cluster.url, ca_data=cluster.tls.ca_pem, token=cluster.token("admin")
            )
        )
        self.elector = LeaderElector(
            self.kube,
            name="sandboxer-operator",
            namespace="default",
            identity=name,
            timings=TIMINGS,
            annotations={"sandboxer.io/budget-check-url": f"http://{name}.test/peer"},
            on_start=self._started,
            on_stop=self._stopped,
            clock=lambda: self.now,
        )

    async def _started(self) -> None:
        self.terms.append("start")

    async def _stopped(self) -> None:
        self.terms.append("stop")


@pytest.fixture
async def cluster() -> AsyncIterator[DevCluster]:
    async with DevCluster() as c:
        yield c


async def lease(c: Candidate) -> dict[str, Any]:
    found = await c.kube.get(LEASE_API, "Lease", "default", "sandboxer-operator")
    assert found is not None
    return dict(found["spec"])


async def test_one_of_two_racing_candidates_wins_and_the_other_follows(
    cluster: DevCluster,
) -> None:
    a, b = Candidate(cluster, "a"), Candidate(cluster, "b")
    await asyncio.gather(a.elector.step(), b.elector.step())
    leaders = [c for c in (a, b) if c.elector.leading]
    assert len(leaders) == 1, "both or neither took the Lease"
    leader, other = (a, b) if a.elector.leading else (b, a)
    await other.elector.step()  # now it reads the Lease the winner wrote
    assert not other.elector.leading
    assert other.elector.holder == leader.elector.identity
    assert other.elector.leader_annotation("sandboxer.io/budget-check-url") == (
        f"http://{leader.elector.identity}.test/peer"
    )
    spec = await lease(a)
    assert spec["holderIdentity"] == leader.elector.identity
    assert spec["leaseDurationSeconds"] == 15
    assert (leader.terms, other.terms) == (["start"], [])
    for c in (a, b):
        await c.kube.close()


async def test_a_silent_leader_is_replaced_only_after_the_lease_duration(
    cluster: DevCluster,
) -> None:
    a, b = Candidate(cluster, "a"), Candidate(cluster, "b")
    await a.elector.step()
    await b.elector.step()  # b sees a's Lease at b's time 0
    assert a.elector.leading and not b.elector.leading
    # a dies: it renews no more. Just before the duration b still waits...
    b.now = TIMINGS.duration - 0.1
    await b.elector.step()
    assert not b.elector.leading and b.elector.holder == "a"
    # ...and at the duration it takes over, counting one transition.
    b.now = TIMINGS.duration
    await b.elector.step()
    assert b.elector.leading and b.terms == ["start"]
    spec = await lease(b)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("b", 1)
    # a comes back (a paused process): it cannot renew, and stops its term once past the
    # renew deadline, before b's renewals could ever expire.
    a.now = TIMINGS.renew_deadline - 0.1
    await a.elector.step()
    assert a.elector.leading, "stepped down before its renew deadline"
    a.now = TIMINGS.renew_deadline
    await a.elector.step()
    assert not a.elector.leading and a.terms == ["start", "stop"]
    for c in (a, b):
        await c.kube.close()


async def test_a_released_lease_is_taken_at_once(cluster: DevCluster) -> None:
    a, b = Candidate(cluster, "a"), Candidate(cluster, "b")
    await a.elector.step()
    await b.elector.step()
    await a.elector.release()
    assert a.terms == ["start", "stop"] and not a.elector.leading
    spec = await lease(a)
    assert "holderIdentity" not in spec
    await b.elector.step()  # no waiting for the duration: nobody holds it
    assert b.elector.leading
    assert (await lease(b))["leaseTransitions"] == 0  # released, not taken from anyone
    for c in (a, b):
        await c.kube.close()


async def test_renewals_keep_the_lease_and_its_acquire_time(cluster: DevCluster) -> None:
    a = Candidate(cluster, "a")
    await a.elector.step()
    first = await lease(a)
    a.now = 5.0
    await a.elector.step()
    renewed = await lease(a)
    assert renewed["acquireTime"] == first["acquireTime"]
    assert renewed["renewTime"] > first["renewTime"]
    assert a.terms == ["start"]
    await a.kube.close()


def test_timings_must_let_the_leader_step_down_before_anyone_takes_over() -> None:
    with pytest.raises(ValueError, match="renew deadline < lease duration"):
        LeaseTimings(duration=10.0, renew_deadline=10.0, retry_period=2.0)
    with pytest.raises(ValueError, match="at least 1s"):
        LeaseTimings.scaled(0.5)
    assert LeaseTimings.scaled(15.0) == LeaseTimings()
