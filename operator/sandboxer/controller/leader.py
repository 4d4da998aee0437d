"""One accounting loop at a time: leader election on a `coordination.k8s.io/v1` Lease.

The rules are the ones Kubernetes' own controllers follow (client-go's leaderelection), so the
Lease reads the same in `kubectl get lease`:

- a candidate takes the Lease when nobody holds it, or when the holder has not renewed it for
  the holder's `leaseDurationSeconds`, timed on the candidate's own monotonic clock from when it
  last saw the Lease change (no clock comparison between machines);
- every write is a PUT carrying the `resourceVersion` that was read, so of two candidates racing
  for one Lease exactly one wins and the other gets 409 Conflict;
- the leader renews every `retry_period`; if it cannot renew for `renew_deadline` (shorter than
  the duration) it stops leading before anybody else may start;
- on shutdown the leader releases the Lease (no holder), so a successor takes over at once
  instead of after the duration.

The leader also writes where it answers budget checks into an annotation of the Lease, so a
standby replica knows whom to hand admission budget checks to (controller/peer_gate.py).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from sandboxer.controller.kube import KubeClient, KubeError
from sandboxer.observability.logging import get_logger

log = get_logger("sandboxer.leader")

LEASE_API = "coordination.k8s.io/v1"
PEER_URL_ANNOTATION = "sandboxer.io/budget-check-url"


@dataclass(frozen=True)
class LeaseTimings:
    """Seconds; the defaults are client-go's (and kube-controller-manager's)."""

    duration: float = 15.0  # a holder silent this long has lost the Lease
    renew_deadline: float = 10.0  # a leader unable to renew this long stops leading
    retry_period: float = 2.0  # between attempts, leader and candidates alike

    @classmethod
    def scaled(cls, duration: float) -> LeaseTimings:
        """client-go's ratios (15 s / 10 s / 2 s) for another duration."""
        return cls(duration, duration * 2 / 3, duration * 2 / 15)

    def __post_init__(self) -> None:
        if self.duration < 1:
            raise ValueError(
                f"a lease duration of {self.duration:g} s is too short: the Lease counts whole "
                "seconds, use at least 1s"
            )
        if not 0 < self.retry_period < self.renew_deadline < self.duration:
            raise ValueError(
                "leader election needs 0 < retry period < renew deadline < lease duration, got "
                f"{self.retry_period:g} s, {self.renew_deadline:g} s, {self.duration:g} s"
            )


def default_identity(dev_port: int | None = None) -> str:
    """Who campaigns, as the Lease's holderIdentity.

    In a cluster the pod's name (the chart sets SANDBOXER_POD_NAME): stable when the kubelet
    restarts the container, so a crashed leader that comes back resumes its own Lease at once
    instead of waiting out the duration, and unique among live replicas. In the playground the
    host and webhook port play that part (two live processes cannot share a port). Elsewhere the
    host name with a random suffix.
    """
    pod = os.environ.get("SANDBOXER_POD_NAME")
    if pod:
        return pod
    if dev_port is not None:
        return f"{socket.gethostname()}_{dev_port}"
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def micro_time(at: datetime) -> str:
    """metav1.MicroTime as the API server writes it."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def claimed_spec(
    current: Mapping[str, Any], identity: str, now: datetime, duration: float
) -> dict[str, Any]:
    """The Lease spec with `identity` holding it: renewed when it held it, else taken over."""
    spec = dict(current)
    stamp = micro_time(now)
    if spec.get("holderIdentity") != identity:
        spec["acquireTime"] = stamp
        spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
            1 if spec.get("holderIdentity") else 0
        )
    spec.update(holderIdentity=identity, leaseDurationSeconds=max(1, round(duration)))
    spec["renewTime"] = stamp
    return spec


def released_spec(current: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """No holder, as client-go releases: the next candidate needs no wait."""
    spec = {k: v for k, v in current.items() if k != "holderIdentity"}
    spec.update(leaseDurationSeconds=1, renewTime=micro_time(now))
    return spec


Hook = Callable[[], Awaitable[None]]


class LeaderElector:
    """Campaigns for one Lease until cancelled; `on_start` / `on_stop` bracket each term."""

    def __init__(
        self,
        kube: KubeClient,
        *,
        name: str,
        namespace: str,
        on_start: Hook,
        on_stop: Hook,
        identity: str | None = None,
        timings: LeaseTimings | None = None,
        annotations: Mapping[str, str] | None = None,
        on_change: Callable[[bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.name, self.namespace = name, namespace
        self.identity = identity or default_identity()
        self.timings = timings or LeaseTimings()
        self.annotations = dict(annotations or {})
        self.on_start, self.on_stop, self.on_change = on_start, on_stop, on_change
        self.clock = clock
        self.leading = False
        self.lease: dict[str, Any] | None = None  # as last read or written
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0  # monotonic time the Lease was last seen to change
        self._renewed_at = 0.0
        self.changed = asyncio.Event()  # set whenever leadership or the holder changes

    # -- what others read ------------------------------------------------------------------

    @property
    def holder(self) -> str | None:
        """Who holds the Lease now, as far as this replica knows (None: nobody, or expired)."""
        spec = (self.lease or {}).get("spec") or {}
        who = spec.get("holderIdentity")
        if not who:
            return None
        if who != self.identity and self._expired(spec):
            return None
        return str(who)

    def leader_annotation(self, key: str) -> str | None:
        """An annotation the current holder wrote (e.g. where it answers budget checks)."""
        if self.holder is None:
            return None
        annotations = ((self.lease or {}).get("metadata") or {}).get("annotations") or {}
        value = annotations.get(key)
        return str(value) if value else None

    # -- the campaign -------------------------------------------------------------------------

    async def run(self) -> None:
        """Campaign and renew forever; cancel to stop (then call `release`)."""
        while True:
            await self.step()
            period = self.timings.retry_period
            # Candidates spread out a little, as client-go's JitterUntil does; the leader keeps
            # its beat.
            await asyncio.sleep(period if self.leading else period * (1 + 0.2 * random.random()))

    async def step(self) -> None:
        """One attempt to acquire or renew, and the start or end of a term it implies."""
        won = await self._try()
        now = self.clock()
        if won:
            self._renewed_at = now
            if not self.leading:
                self.leading = True
                log.info("Became leader", lease=f"{self.namespace}/{self.name}",
                         identity=self.identity)  # fmt: skip
                self._changed()
                await self.on_start()
        elif self.leading and now - self._renewed_at >= self.timings.renew_deadline:
            log.warning("Lost the leader lease: could not renew it in time",
                        lease=f"{self.namespace}/{self.name}", identity=self.identity,
                        deadline_s=self.timings.renew_deadline)  # fmt: skip
            await self._step_down()

    async def release(self) -> None:
        """End this term and leave the Lease without a holder (on shutdown)."""
        if not self.leading:
            return
        await self._step_down()
        lease = self.lease or {}
        if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return
        body = {**self._body(lease), "spec": released_spec(lease["spec"], datetime.now(UTC))}
        try:
            self._seen(await self.kube.replace(body))
            log.info("Released the leader lease", lease=f"{self.namespace}/{self.name}")
        except KubeError as exc:  # a successor waits out the duration instead
            log.warning("Leader lease not released", error=exc.message)

    async def _step_down(self) -> None:
        self.leading = False
        self._changed()
        await self.on_stop()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change(self.leading)
        self.changed.set()
        self.changed = asyncio.Event()

    def _expired(self, spec: Mapping[str, Any]) -> bool:
        duration = float(spec.get("leaseDurationSeconds") or self.timings.duration)
        return self.clock() - self._observed_at >= duration

    def _seen(self, lease: dict[str, Any]) -> None:
        """Remember the Lease; restart the expiry timer when its holder or renewal moved."""
        spec = lease.get("spec") or {}
        key = (spec.get("holderIdentity"), spec.get("renewTime"),
               lease["metadata"].get("resourceVersion"))  # fmt: skip
        before = self.holder
        if key != self._observed:
            self._observed, self._observed_at = key, self.clock()
        self.lease = lease
        if self.holder != before:
            self.changed.set()
            self.changed = asyncio.Event()

    def _body(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        meta = dict(lease.get("metadata") or {})
        annotations = {**(meta.get("annotations") or {}), **self.annotations}
        return {
            "apiVersion": LEASE_API,
            "kind": "Lease",
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "annotations": annotations,
                **({"resourceVersion": meta["resourceVersion"]}
                   if meta.get("resourceVersion") else {}),
            },
        }  # fmt: skip

    async def _try(self) -> bool:
        now = datetime.now(UTC)
        try:
            lease = await self.kube.get(LEASE_API, "Lease", self.namespace, self.name)
            if lease is None:
                spec = claimed_spec({"leaseTransitions": 0}, self.identity, now,
                                    self.timings.duration)  # fmt: skip
                self._seen(await self.kube.create({**self._body({}), "spec": spec}))
                return True
            self._seen(lease)
            spec = lease.get("spec") or {}
            holder = spec.get("holderIdentity")
            if holder and holder != self.identity and not self._expired(spec):
                return False
            claimed = claimed_spec(spec, self.identity, now, self.timings.duration)
            self._seen(await self.kube.replace({**self._body(lease), "spec": claimed}))
            if holder and holder != self.identity:
                log.info("Took over an expired leader lease", previous=holder)
            return True
        except KubeError as exc:
            if exc.status != 409:  # 409: another candidate wrote first, which is normal
                log.warning("Leader election attempt failed", status=exc.status,
                            error=exc.message)  # fmt: skip
            return False
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("Leader election attempt failed", error=str(exc))
            return False
