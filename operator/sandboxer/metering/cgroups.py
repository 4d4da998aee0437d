"""Host PID -> pod UID, from `/proc/<pid>/cgroup` (the agent runs with hostPID or the host's /proc).

The kubelet puts every container in a cgroup under its pod's:
- cgroup v1 (cgroupfs driver): `/kubepods/<qos>/pod<uid>/<container id>` (no qos for Guaranteed);
- cgroup v2 / systemd driver: `/kubepods.slice/kubepods-<qos>.slice/
  kubepods-<qos>-pod<uid with _ for ->.slice/cri-containerd-<id>.scope`.
"""

from __future__ import annotations

import re
from pathlib import Path

_UID = r"[0-9a-fA-F]{8}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{4}[-_][0-9a-fA-F]{12}"
_POD = re.compile(rf"(?:^|/|-)pod({_UID})(?:\.slice)?(?:/|$)")


def pod_uid_from_cgroup(text: str) -> str | None:
    """The pod UID in the contents of a `/proc/<pid>/cgroup` file, or None for a non-pod process."""
    for line in text.splitlines():
        # "hierarchy-id:controllers:path"; the path itself may contain ':'.
        parts = line.split(":", 2)
        if len(parts) != 3 or "kubepods" not in parts[2]:
            continue
        match = _POD.search(parts[2])
        if match:
            return match.group(1).replace("_", "-").lower()
    return None


class CgroupResolver:
    """Looks up pod UIDs under a configurable proc root (the host's /proc, or a test fixture)."""

    def __init__(self, proc_root: str | Path = "/proc") -> None:
        self.proc_root = Path(proc_root)

    def pod_uid(self, pid: int) -> str | None:
        try:
            text = (self.proc_root / str(pid) / "cgroup").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError, NotADirectoryError):
            return None  # the process exited, or is not visible from here
        return pod_uid_from_cgroup(text)
