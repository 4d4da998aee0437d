"""kubectl 1.35's typed commands send protobuf bodies; the embedded API decodes them as upstream."""

from __future__ import annotations

import base64
import json
from typing import Any

from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.protobuf import MAGIC, PROTOBUF
from sandboxer.devcluster.protobuf import message as protobuf_message
from tests.integration.conftest import Kubectl

# What the JSON path stores for the same object, minus what the server stamps.
SERVER_STAMPED = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "name")


def comparable(obj: dict[str, Any]) -> Any:
    """The object with server-stamped fields gone and its own name (also in labels) neutral."""
    meta = {k: v for k, v in obj["metadata"].items() if k not in SERVER_STAMPED}
    text = json.dumps({**obj, "metadata": meta}, sort_keys=True)
    return json.loads(text.replace(obj["metadata"]["name"], "NAME"))


async def test_typed_creates_of_a_namespace_secret_and_configmap_read_back(
    kubectl: Kubectl,
) -> None:
    created = await kubectl("create", "namespace", "ml-scratch")
    assert "namespace/ml-scratch created" in created.stdout
    ns = (await kubectl("get", "namespace", "ml-scratch", "-o", "json")).json()
    assert ns["metadata"]["name"] == "ml-scratch" and ns["metadata"]["uid"]

    await kubectl(
        "create", "secret", "generic", "hf-token", "-n", "ml-scratch",
        "--from-literal=token=hf_abc", "--from-literal=empty=",
    )  # fmt: skip
    secret = (await kubectl("get", "secret", "hf-token", "-n", "ml-scratch", "-o", "json")).json()
    assert base64.b64decode(secret["data"]["token"]) == b"hf_abc"
    assert secret["data"]["empty"] == ""

    await kubectl(
        "create", "configmap", "settings", "-n", "ml-scratch", "--from-literal=epochs=3",
        "--from-literal=note=",
    )  # fmt: skip
    cm = (await kubectl("get", "cm", "settings", "-n", "ml-scratch", "-o", "json")).json()
    assert cm["data"] == {"epochs": "3", "note": ""}
    assert cm["metadata"]["namespace"] == "ml-scratch"


async def test_a_protobuf_body_stores_what_the_same_object_as_json_stores(
    kubectl: Kubectl,
) -> None:
    await kubectl("create", "namespace", "proto-ns")
    verbs = [
        ("secret", ["create", "secret", "docker-registry", "{}", "--docker-server=r.example",
                    "--docker-username=u", "--docker-password=p"]),
        ("serviceaccount", ["create", "serviceaccount", "{}"]),
        ("role", ["create", "role", "{}", "--verb=get,list", "--resource=pods"]),
        ("deployment", ["create", "deployment", "{}", "--image=busybox", "--replicas=0"]),
        ("poddisruptionbudget", ["create", "pdb", "{}", "--selector=app=x", "--min-available=1"]),
        ("priorityclass", ["create", "priorityclass", "{}", "--value=10"]),
    ]  # fmt: skip
    for kind, args in verbs:
        via_protobuf = [a.format(f"{kind}-pb") for a in args]
        await kubectl(*via_protobuf, "-n", "proto-ns")
        # The same command's object, sent as JSON through `create -f`.
        dumped = await kubectl(*[a.format(f"{kind}-js") for a in args], "-n", "proto-ns",
                               "--dry-run=client", "-o", "json")  # fmt: skip
        await kubectl("create", "-f", "-", "-n", "proto-ns", input=dumped.stdout)
        pb, js = [
            (await kubectl("get", kind, f"{kind}-{via}", "-n", "proto-ns", "-o", "json")).json()
            for via in ("pb", "js")
        ]
        assert comparable(pb) == comparable(js), kind
    deployment = (await kubectl("get", "deploy", "deployment-pb", "-n", "proto-ns", "-o",
                                "json")).json()  # fmt: skip
    assert deployment["spec"]["replicas"] == 0  # a pointer's zero survives the decoding


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    unknown = protobuf_message("k8s.io.apimachinery.pkg.runtime.Unknown")
    assert unknown is not None
    wrapped = unknown(typeMeta={"apiVersion": api_version, "kind": kind}, raw=raw)
    return MAGIC + wrapped.SerializeToString()


async def test_refusals_are_the_ones_kube_apiserver_gives(devcluster: DevCluster) -> None:
    ns_body = protobuf_message("k8s.io.api.core.v1.Namespace")(metadata={"name": "x"})
    cases = [
        # Custom resources have no protobuf form upstream either.
        ("POST", "/apis/sandboxer.io/v1alpha1/namespaces/default/experimentsandboxes",
         envelope("sandboxer.io/v1alpha1", "ExperimentSandbox", b""), 415, "UnsupportedMediaType"),
        # Patches are JSON patch, merge, strategic merge or apply YAML, never protobuf.
        ("PATCH", "/api/v1/namespaces/default", envelope("v1", "Namespace", b""), 415,
         "UnsupportedMediaType"),
        ("POST", "/api/v1/namespaces", b"not-k8s", 400, "BadRequest"),
        ("POST", "/api/v1/namespaces", MAGIC + b"\xff\xff", 400, "BadRequest"),
        ("POST", "/api/v1/namespaces", envelope("v1", "NoSuchKind", b""), 400, "BadRequest"),
    ]  # fmt: skip
    async with devcluster.session("admin") as http:
        for method, path, body, code, reason in cases:
            async with http.request(
                method, path, data=body, headers={"Content-Type": PROTOBUF}
            ) as response:
                status = await response.json()
                assert (response.status, status["reason"]) == (code, reason), (path, status)
                assert status["message"]
        async with http.post(
            "/api/v1/namespaces",
            data=envelope("v1", "Namespace", ns_body.SerializeToString()),
            headers={"Content-Type": f"{PROTOBUF}; charset=binary", "Accept": PROTOBUF},
        ) as response:
            assert response.status == 201  # answered in JSON, which kubectl accepts too
            assert (await response.json())["metadata"]["name"] == "x"
