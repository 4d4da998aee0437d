"""Minimal StatefulSet controller (pods `<name>-<i>`, PVCs from volumeClaimTemplates, status)
and PVC binding, enough for sandboxes to scale between 0 and 1 like on a real cluster."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from sandboxer.devcluster.apiserver import ApiServer
from sandboxer.devcluster.store import ResKey

STATEFULSETS: ResKey = ("apps", "v1", "statefulsets")
PODS: ResKey = ("", "v1", "pods")
PVCS: ResKey = ("", "v1", "persistentvolumeclaims")
REVISION_LABEL = "controller-revision-hash"


def template_revision(sts: dict[str, Any]) -> str:
    template = (sts.get("spec") or {}).get("template") or {}
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
    return f"{sts['metadata']['name']}-{digest}"


def build_pod(sts: dict[str, Any], ordinal: int) -> dict[str, Any]:
    meta = sts["metadata"]
    spec = sts.get("spec") or {}
    template = spec.get("template") or {}
    tmeta = template.get("metadata") or {}
    name = f"{meta['name']}-{ordinal}"
    pod_spec = dict(template.get("spec") or {})
    volumes = list(pod_spec.get("volumes") or [])
    for claim in spec.get("volumeClaimTemplates") or []:
        cname = claim["metadata"]["name"]
        volumes.append({"name": cname, "persistentVolumeClaim": {"claimName": f"{cname}-{name}"}})
    if volumes:
        pod_spec["volumes"] = volumes
    pod_spec["hostname"] = name
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    labels = {
        **(tmeta.get("labels") or {}),
        "statefulset.kubernetes.io/pod-name": name,
        "apps.kubernetes.io/pod-index": str(ordinal),
        REVISION_LABEL: template_revision(sts),
    }
    pod_meta: dict[str, Any] = {
        "name": name,
        "namespace": meta["namespace"],
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "apps/v1",
                "kind": "StatefulSet",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if tmeta.get("annotations"):
        pod_meta["annotations"] = dict(tmeta["annotations"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def build_claim(sts: dict[str, Any], claim: dict[str, Any], ordinal: int) -> dict[str, Any]:
    meta = sts["metadata"]
    cmeta = claim.get("metadata") or {}
    selector = ((sts.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": f"{cmeta['name']}-{meta['name']}-{ordinal}",
            "namespace": meta["namespace"],
            "labels": {**selector, **(cmeta.get("labels") or {})},
        },
        "spec": dict(claim.get("spec") or {}),
    }


def _ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class StatefulSetController:
    def __init__(self, apiserver: ApiServer) -> None:
        self.apiserver = apiserver
        self._queue: set[tuple[str, str]] = set()
        self._claims: set[tuple[str, str]] = set()
        self._wake = asyncio.Event()
        apiserver.store.listeners.append(self._on_event)

    def _on_event(self, kind: str, res: ResKey, obj: dict[str, Any], old: Any) -> None:
        meta = obj["metadata"]
        if res == STATEFULSETS and kind != "DELETED":
            self._queue.add((meta["namespace"], meta["name"]))
        elif res == PODS:
            for ref in meta.get("ownerReferences") or []:
                if ref.get("kind") == "StatefulSet" and ref.get("controller"):
                    self._queue.add((meta["namespace"], ref["name"]))
        elif res == PVCS and kind == "ADDED" and not (obj.get("spec") or {}).get("volumeName"):
            self._claims.add((meta["namespace"], meta["name"]))
        else:
            return
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            claims, self._claims = self._claims, set()
            for ns, name in sorted(claims):
                self._bind_claim(ns, name)
            queue, self._queue = self._queue, set()
            for ns, name in sorted(queue):
                sts = self.apiserver.store.get(STATEFULSETS, ns, name)
                if sts is not None and not sts["metadata"].get("deletionTimestamp"):
                    self.reconcile(sts)
            await asyncio.sleep(0)

    def reconcile(self, sts: dict[str, Any]) -> None:
        meta = sts["metadata"]
        ns, name = meta["namespace"], meta["name"]
        spec = sts.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        revision = template_revision(sts)
        store = self.apiserver.store
        for i in range(replicas):
            for claim in spec.get("volumeClaimTemplates") or []:
                pvc = build_claim(sts, claim, i)
                if store.get(PVCS, ns, pvc["metadata"]["name"]) is None:
                    self.apiserver.put_system(PVCS, pvc)
            pod = store.get(PODS, ns, f"{name}-{i}")
            if pod is None:
                self.apiserver.put_system(PODS, build_pod(sts, i))
            elif (pod["metadata"].get("labels") or {}).get(REVISION_LABEL) != revision:
                self.apiserver.delete_system(PODS, ns, f"{name}-{i}")  # rolling update: recreate
        # Scale down: remove pods with an ordinal at or above replicas; PVCs are kept.
        index = replicas
        while (pod := store.get(PODS, ns, f"{name}-{index}")) is not None:
            owned = any(
                r.get("uid") == meta["uid"] for r in pod["metadata"].get("ownerReferences") or []
            )
            if owned:
                self.apiserver.delete_system(PODS, ns, f"{name}-{index}")
            index += 1
        self._update_status(sts, replicas, revision)

    def _update_status(self, sts: dict[str, Any], replicas: int, revision: str) -> None:
        meta = sts["metadata"]
        pods = [
            self.apiserver.store.get(PODS, meta["namespace"], f"{meta['name']}-{i}")
            for i in range(replicas)
        ]
        existing = [p for p in pods if p is not None]
        ready = sum(1 for p in existing if _ready(p))
        status = {
            "observedGeneration": meta.get("generation", 1),
            "replicas": len(existing),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(existing),
            "updatedReplicas": len(existing),
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
        }
        if sts.get("status") != status:
            self.apiserver.put_system(STATEFULSETS, {**sts, "status": status})

    def _bind_claim(self, ns: str, name: str) -> None:
        pvc = self.apiserver.store.get(PVCS, ns, name)
        if pvc is None or (pvc.get("spec") or {}).get("volumeName"):
            return
        spec = pvc.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        volume = f"pvc-{pvc['metadata']['uid']}"
        status = {
            "phase": "Bound",
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "capacity": {"storage": size},
        }
        annotations = {
            **(pvc["metadata"].get("annotations") or {}),
            "pv.kubernetes.io/bind-completed": "yes",
            "pv.kubernetes.io/bound-by-controller": "yes",
        }
        bound = {
            **pvc,
            "metadata": {**pvc["metadata"], "annotations": annotations},
            "spec": {
                **spec,
                "volumeName": volume,
                "storageClassName": spec.get("storageClassName", "standard"),
            },
            "status": status,
        }
        self.apiserver.put_system(PVCS, bound)
