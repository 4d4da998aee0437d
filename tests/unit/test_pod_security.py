"""The notebook pod meets the Pod Security Standards "restricted" profile."""

from __future__ import annotations

import copy

import pytest

from sandboxer.manifests.statefulset import build_statefulset
from tests.pss_restricted import violations
from tests.sandbox_fixtures import example_class, make_sandbox


def pod_spec() -> dict:  # type: ignore[type-arg]
    return build_statefulset(make_sandbox(), example_class())["spec"]["template"]["spec"]


def test_notebook_pod_is_restricted() -> None:
    assert violations(pod_spec()) == []


def test_root_filesystem_is_read_only_with_writable_home_and_tmp() -> None:
    spec = pod_spec()
    container = spec["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "persistentVolumeClaim" in volumes[mounts["/home/jovyan"]]
    assert "emptyDir" in volumes[mounts["/tmp"]]


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (
            lambda s: s["containers"][0]["securityContext"].update(allowPrivilegeEscalation=True),
            "allowPrivilegeEscalation",
        ),
        (
            lambda s: s["containers"][0]["securityContext"].update(
                capabilities={"add": ["SYS_ADMIN"]}
            ),
            "capabilities",
        ),
        (lambda s: s.update(hostNetwork=True), "hostNetwork"),
        (lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}), "forbidden type"),
        (
            lambda s: (
                s["securityContext"].pop("runAsNonRoot"),
                s["containers"][0]["securityContext"].pop("runAsNonRoot"),
            ),
            "runAsNonRoot",
        ),
        (
            lambda s: (
                s["securityContext"].pop("seccompProfile"),
                s["containers"][0]["securityContext"].pop("seccompProfile"),
            ),
            "seccomp",
        ),
        (lambda s: s["containers"][0]["securityContext"].update(runAsUser=0), "runAsUser"),
    ],
)
def test_checker_catches_a_bad_pod(breakage, expected) -> None:  # type: ignore[no-untyped-def]
    spec = copy.deepcopy(pod_spec())
    breakage(spec)
    found = violations(spec)
    assert any(expected in v for v in found), found
