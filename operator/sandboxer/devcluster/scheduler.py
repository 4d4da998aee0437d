"""Simulated kube-scheduler + kubelet: binds pods that fit, marks them Running and Ready (or
failing to start, see kubelet.py), and records which GPU (or MIG) devices each pod got, as the
NVIDIA device plugin would."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sandboxer.devcluster import kubelet, objects
from sandboxer.devcluster.apiserver import ApiServer
from sandboxer.devcluster.nodes import NodeSpec
from sandboxer.devcluster.placement import (
    NodeView,
    filter_node,
    pod_requests,
    unschedulable_message,
)
from sandboxer.devcluster.quantities import parse_quantity
from sandboxer.devcluster.store import ResKey

PODS: ResKey = ("", "v1", "pods")
NODES: ResKey = ("", "v1", "nodes")
EVENTS: ResKey = ("", "v1", "events")


@dataclass(frozen=True)
class Allocation:
    """Devices a pod holds on a node: [(resource name, [device IDs])]."""

    pod_uid: str
    namespace: str
    name: str
    devices: tuple[tuple[str, tuple[str, ...]], ...]


AllocationHook = Callable[[str, dict[str, Allocation]], None]


@dataclass
class _Node:
    spec: NodeSpec | None
    index: int
    devices: dict[str, list[str]]
    used: dict[str, float] = field(default_factory=dict)
    pods: dict[str, Allocation] = field(default_factory=dict)
    requests: dict[str, dict[str, float]] = field(default_factory=dict)  # pod uid -> requests
    next_ip: int = 2


class Scheduler:
    def __init__(self, apiserver: ApiServer, *, container_start: float = 0.0) -> None:
        self.apiserver = apiserver
        # Seconds a bound pod spends in ContainerCreating before it runs (0: at once). Real
        # kubelets take seconds; the playground uses a little so a controller sees both steps.
        self.container_start = container_start
        self._nodes: dict[str, _Node] = {}
        self._pending: dict[str, tuple[str, str]] = {}  # uid -> (namespace, name)
        self._wake = asyncio.Event()
        self._dirty = False
        self.hooks: list[AllocationHook] = []
        # What the kubelet runs for a pod: told when its containers run and when it is gone.
        self.started: list[Callable[[dict[str, Any]], None]] = []
        self.stopped: list[Callable[[str], None]] = []
        # With it, a running pod is Ready only when this says its process answers.
        self.ready_when: Callable[[dict[str, Any]], Awaitable[bool]] | None = None
        self._probes: set[asyncio.Task[None]] = set()
        apiserver.store.listeners.append(self._on_event)

    # -- in-process API ----------------------------------------------------------------------

    def add_node(self, spec: NodeSpec) -> None:
        self._nodes[spec.name] = _Node(spec, len(self._nodes) + 1, spec.devices())

    def allocations(self, node: str) -> dict[str, Allocation]:
        entry = self._nodes.get(node)
        return dict(entry.pods) if entry else {}

    def node_of(self, pod_uid: str) -> str | None:
        for name, node in self._nodes.items():
            if pod_uid in node.pods:
                return name
        return None

    # -- events ------------------------------------------------------------------------------

    def _on_event(self, kind: str, res: ResKey, obj: dict[str, Any], old: Any) -> None:
        if res == PODS:
            meta = obj["metadata"]
            if kind == "DELETED":
                self._pending.pop(meta["uid"], None)
                for stop in self.stopped:
                    stop(meta["uid"])
                if not self._release(obj):
                    return  # nothing freed: pending pods cannot fit any better
            elif (
                (obj.get("spec") or {}).get("nodeName")
                or meta.get("deletionTimestamp")
                or meta["uid"] in self._pending
            ):
                return
            else:
                self._pending[meta["uid"]] = (meta.get("namespace", ""), meta["name"])
        elif res == NODES:
            name = obj["metadata"]["name"]
            if kind == "DELETED":
                self._nodes.pop(name, None)
            elif name not in self._nodes:
                self._nodes[name] = _Node(None, len(self._nodes) + 1, {})
        else:
            return
        self._dirty = True
        self._wake.set()

    def _release(self, pod: dict[str, Any]) -> bool:
        uid = pod["metadata"]["uid"]
        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self._nodes.get(node_name or "")
        if node is None or uid not in node.pods:
            return False
        node.pods.pop(uid)
        for name, amount in node.requests.pop(uid, {}).items():
            node.used[name] = node.used.get(name, 0.0) - amount
        self._notify(node_name or "")
        return True

    def _notify(self, node_name: str) -> None:
        snapshot = self.allocations(node_name)
        for hook in list(self.hooks):
            hook(node_name, snapshot)

    # -- the loop ----------------------------------------------------------------------------

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._dirty:
                self._dirty = False
                self.schedule_pending()
            await asyncio.sleep(0)

    def schedule_pending(self) -> None:
        for uid, (ns, name) in list(self._pending.items()):
            pod = self.apiserver.store.get(PODS, ns, name)
            if (
                pod is None
                or pod["metadata"]["uid"] != uid
                or (pod.get("spec") or {}).get("nodeName")
            ):
                self._pending.pop(uid, None)
                continue
            if self._schedule(pod):
                self._pending.pop(uid, None)

    def _view(self, name: str, node: _Node) -> NodeView | None:
        obj = self.apiserver.store.get(NODES, "", name)
        if obj is None:
            return None
        allocatable = {
            k: parse_quantity(v)
            for k, v in ((obj.get("status") or {}).get("allocatable") or {}).items()
        }
        spec = obj.get("spec") or {}
        return NodeView(
            name=name,
            labels=(obj["metadata"].get("labels") or {}),
            taints=tuple(spec.get("taints") or ()),
            allocatable=allocatable,
            used=node.used,
            unschedulable=bool(spec.get("unschedulable")),
        )

    def _schedule(self, pod: dict[str, Any]) -> bool:
        requests = pod_requests(pod)
        reasons: Counter[str] = Counter()
        fits: list[tuple[float, str]] = []
        views = 0
        for name, node in self._nodes.items():
            view = self._view(name, node)
            if view is None:
                continue
            views += 1
            why = filter_node(pod, view, requests)
            if why:
                reasons.update(why)
                continue
            # Spread, like the default LeastAllocated score: prefer the emptiest node.
            gpu_total = sum(len(ids) for ids in node.devices.values()) or 1
            gpu_used = sum(len(a) for alloc in node.pods.values() for _, a in alloc.devices)
            fits.append((gpu_used / gpu_total, name))
        if not fits:
            self._mark_unschedulable(pod, unschedulable_message(views, reasons))
            return False
        self._bind(pod, min(fits)[1], requests)
        return True

    def _bind(self, pod: dict[str, Any], node_name: str, requests: dict[str, float]) -> None:
        node = self._nodes[node_name]
        meta = pod["metadata"]
        devices: list[tuple[str, tuple[str, ...]]] = []
        taken = {d for alloc in node.pods.values() for _, ids in alloc.devices for d in ids}
        for resource, ids in node.devices.items():
            count = int(requests.get(resource, 0))
            if count:
                free = [d for d in ids if d not in taken]
                devices.append((resource, tuple(free[:count])))
        node.pods[meta["uid"]] = Allocation(
            meta["uid"], meta.get("namespace", ""), meta["name"], tuple(devices)
        )
        node.requests[meta["uid"]] = dict(requests)
        for name, amount in requests.items():
            node.used[name] = node.used.get(name, 0.0) + amount
        # Pod IPs on the loopback network, so what the kubelet runs for a pod (a real Jupyter
        # Server, devcluster/notebooks.py) is reachable at its pod's IP, as on a cluster.
        ip = f"127.244.{node.index}.{node.next_ip}"
        node.next_ip = node.next_ip + 1 if node.next_ip < 254 else 2
        now = objects.now_rfc3339(self.apiserver.clock())
        spec = pod.get("spec") or {}
        statuses = [
            {
                "name": c.get("name", ""),
                "image": c.get("image", ""),
                "imageID": c.get("image", ""),
                "containerID": "containerd://"
                + hashlib.sha256(f"{meta['uid']}/{c.get('name')}".encode()).hexdigest(),
                "ready": True,
                "started": True,
                "restartCount": 0,
                "state": {"running": {"startedAt": now}},
            }
            for c in spec.get("containers") or []
        ]
        conditions = [
            {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
            for t in (
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            )
        ]
        status = {
            "phase": "Running",
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "podIP": ip,
            "podIPs": [{"ip": ip}],
            "startTime": now,
            "containerStatuses": statuses,
            "qosClass": "Burstable",
        }
        bound = {**pod, "spec": {**spec, "nodeName": node_name}, "status": status}
        if self.container_start > 0:
            self.apiserver.put_system(PODS, {**bound, "status": _creating(status)})
            asyncio.get_running_loop().call_later(self.container_start, self._run_containers, bound)
        else:
            self.apiserver.put_system(PODS, bound)  # the binding (spec.nodeName) first
            self._run_containers(bound)
        self._notify(node_name)

    def _run_containers(self, bound: dict[str, Any], restarts: int = 0) -> None:
        """The containers of a bound pod started (if it is still there): Running and Ready, or
        failing as its container-start annotation asks (devcluster/kubelet.py)."""
        current = self._still_there(bound)
        if current is None:
            return
        status, mode = bound["status"], kubelet.start_mode(bound)
        if mode == "CrashLoopBackOff":
            restarts += 1  # it ran and exited: the kubelet restarts it after a back-off
            now = objects.now_rfc3339(self.apiserver.clock())
            status = kubelet.failing_status(status, bound, mode, restarts, now)
            delay = kubelet.backoff(restarts)
            asyncio.get_running_loop().call_later(delay, self._run_containers, bound, restarts)
        elif mode == "ImagePullBackOff":
            now = objects.now_rfc3339(self.apiserver.clock())
            status = kubelet.failing_status(status, bound, mode, 0, now)
        if mode == "Running" and self.ready_when is not None:
            # A process really runs for the pod: Ready only once its readiness probe passes.
            probing = kubelet.probing_status(status)
            if probing != (current.get("status") or {}):
                self.apiserver.put_system(PODS, {**current, "status": probing})
            for start in self.started:
                start({**current, "status": status})
            task = asyncio.get_running_loop().create_task(self._ready(current, status))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)
            return
        if status != (current.get("status") or {}):
            self.apiserver.put_system(PODS, {**current, "status": status})

    def _still_there(self, pod: dict[str, Any]) -> dict[str, Any] | None:
        """The stored pod, if it is still this one (same uid) and not being deleted."""
        meta = pod["metadata"]
        current = self.apiserver.store.get(PODS, meta.get("namespace", ""), meta["name"])
        if current is None or current["metadata"]["uid"] != meta["uid"]:
            return None
        if current["metadata"].get("deletionTimestamp"):
            return None
        return current

    async def _ready(self, pod: dict[str, Any], status: dict[str, Any]) -> None:
        assert self.ready_when is not None
        if not await self.ready_when(pod):
            return  # never answered: not Ready, as a failing probe leaves it
        current = self._still_there(pod)
        if current is None:
            return
        now = objects.now_rfc3339(self.apiserver.clock())
        conditions = [
            {**c, "lastTransitionTime": now} if c["type"] in ("Ready", "ContainersReady") else c
            for c in status["conditions"]
        ]
        self.apiserver.put_system(PODS, {**current, "status": {**status, "conditions": conditions}})

    def _mark_unschedulable(self, pod: dict[str, Any], message: str) -> None:
        status = pod.get("status") or {}
        previous = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None
        )
        if previous and previous.get("message") == message:
            return  # unchanged: no new write, no new Event
        now = objects.now_rfc3339(self.apiserver.clock())
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastProbeTime": None,
            "lastTransitionTime": now,
        }
        new_status = {**status, "phase": "Pending", "conditions": [condition]}
        self.apiserver.put_system(PODS, {**pod, "status": new_status})
        self._event(pod, "Warning", "FailedScheduling", message, now)

    def _event(self, obj: dict[str, Any], type_: str, reason: str, message: str, now: str) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace", "default")
        name = f"{meta['name']}.{hashlib.sha256((meta['uid'] + reason).encode()).hexdigest()[:16]}"
        old = self.apiserver.store.get(EVENTS, ns, name)
        count = int((old or {}).get("count", 0)) + 1
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Pod"),
                "name": meta["name"],
                "namespace": ns,
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": "default-scheduler"},
            "reportingComponent": "default-scheduler",
            "reportingInstance": "default-scheduler",
            "firstTimestamp": (old or {}).get("firstTimestamp", now),
            "lastTimestamp": now,
            "count": count,
        }
        self.apiserver.put_system(EVENTS, event)


def _creating(running: dict[str, Any]) -> dict[str, Any]:
    """What the kubelet reports between binding and the containers running."""
    waiting = {"waiting": {"reason": "ContainerCreating"}}
    statuses = [
        {**c, "ready": False, "started": False, "state": waiting, "containerID": ""}
        for c in running.get("containerStatuses", [])
    ]
    conditions = [
        {**c, "status": "True" if c["type"] in ("PodScheduled", "Initialized") else "False"}
        for c in running["conditions"]
    ]
    kept = {k: v for k, v in running.items() if k not in ("podIP", "podIPs")}
    return {**kept, "phase": "Pending", "conditions": conditions, "containerStatuses": statuses}
