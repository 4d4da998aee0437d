from __future__ import annotations

from pathlib import Path

import pytest

from sandboxer.metering.cgroups import CgroupResolver, pod_uid_from_cgroup

UID = "3f1c2a4e-9b7d-4c21-8e5f-0a1b2c3d4e5f"

V1 = f"""12:pids:/kubepods/burstable/pod{UID}/0123456789abcdef
11:memory:/kubepods/burstable/pod{UID}/0123456789abcdef
1:name=systemd:/kubepods/burstable/pod{UID}/0123456789abcdef
"""
V1_GUARANTEED = f"4:devices:/kubepods/pod{UID}/cafe\n"
V2_SYSTEMD = (
    "0::/kubepods.slice/kubepods-besteffort.slice/"
    f"kubepods-besteffort-pod{UID.replace('-', '_')}.slice/cri-containerd-abc123.scope\n"
)
V2_GUARANTEED = f"0::/kubepods.slice/kubepods-pod{UID.replace('-', '_')}.slice/crio-1.scope\n"


@pytest.mark.parametrize("text", [V1, V1_GUARANTEED, V2_SYSTEMD, V2_GUARANTEED])
def test_pod_uid_from_kubelet_cgroup_layouts(text: str) -> None:
    assert pod_uid_from_cgroup(text) == UID


@pytest.mark.parametrize(
    "text",
    [
        "0::/system.slice/containerd.service\n",
        "0::/user.slice/user-1000.slice/session-1.scope\n",
        "0::/\n",
        "",
        "garbage without colons\n",
        "0::/kubepods.slice/kubepods-burstable.slice\n",  # the QoS slice, not a pod
    ],
)
def test_non_pod_processes_have_no_uid(text: str) -> None:
    assert pod_uid_from_cgroup(text) is None


def test_resolver_reads_a_proc_root(tmp_path: Path) -> None:
    (tmp_path / "4242").mkdir()
    (tmp_path / "4242" / "cgroup").write_text(V2_SYSTEMD)
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_text("0::/init.scope\n")
    resolver = CgroupResolver(tmp_path)
    assert resolver.pod_uid(4242) == UID
    assert resolver.pod_uid(7) is None
    assert resolver.pod_uid(99999) is None  # exited
