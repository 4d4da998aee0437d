"""The real NVML probe through the real pynvml binding, against a fake libnvidia-ml.so.1 built
from C. pynvml dlopen()s "libnvidia-ml.so.1", found through LD_LIBRARY_PATH, which the dynamic
loader reads only at process start: so each probe runs in a fresh interpreter."""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
SCRIPT = """
import ctypes, dataclasses, json, os
from sandboxer.metering.nvml import NvmlProbe, ProbeUnavailable
probe = NvmlProbe()
try:
    out = {"devices": [dataclasses.asdict(d) for d in probe.sample()]}
    for _ in range(int(os.environ.get("SAMPLES", "1")) - 1):
        out["devices"] = [dataclasses.asdict(d) for d in probe.sample()]
except ProbeUnavailable as exc:
    out = {"unavailable": [exc.reason, exc.message]}
probe.close()
try:
    out["gpm_live"] = ctypes.CDLL("libnvidia-ml.so.1").fake_gpm_live()
except (OSError, AttributeError):  # no library, or not the fake
    out["gpm_live"] = None
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def fake_lib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not installed: cannot build the fake libnvidia-ml.so.1")
    out = tmp_path_factory.mktemp("fake-nvml")
    subprocess.run(
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-Werror", "-Wl,-soname,libnvidia-ml.so.1",
         "-o", str(out / "libnvidia-ml.so.1"), str(HERE / "fake_nvml" / "fake_nvml.c")],
        check=True,
    )  # fmt: skip
    return out


def probe(lib_dir: Path | None, repo_root: Path, **env: str) -> dict[str, Any]:
    environ = {**os.environ, "PYTHONPATH": str(repo_root / "operator"), **env}
    if lib_dir is not None:
        environ["LD_LIBRARY_PATH"] = str(lib_dir)
    else:
        environ.pop("LD_LIBRARY_PATH", None)
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=environ, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_probe_maps_gpus_mig_devices_and_a_lost_gpu(fake_lib_dir: Path, repo_root: Path) -> None:
    devices = probe(fake_lib_dir, repo_root)["devices"]
    assert [d["uuid"] for d in devices] == [
        "GPU-00000000-0000-0000-0000-000000000000",
        "GPU-11111111-0000-0000-0000-000000000000",
        "MIG-11111111-1111-1111-1111-111111111111",
        "MIG-22222222-2222-2222-2222-222222222222",
        "GPU-22222222-0000-0000-0000-000000000000",
    ]
    full, mig_parent, mig0, mig2, lost = devices
    assert full == {
        "uuid": "GPU-00000000-0000-0000-0000-000000000000",
        "index": 0,
        "model": "NVIDIA H100 80GB HBM3",
        "parent_uuid": None,
        "mig_profile": None,
        "memory_total_bytes": 80 * 2**30,
        "memory_used_bytes": 4 * 2**30,
        "utilization_percent": 42.0,
        "utilization_signal": "DutyCycle",
        "energy_millijoules": 123456789,
        "power_watts": 250.5,
        "processes": [{"pid": 4242, "used_memory_bytes": 3 * 2**30}],
        "state": "Healthy",
        "message": None,
    }
    assert mig_parent["utilization_percent"] is None
    assert mig_parent["utilization_signal"] == "None"
    for mig in (mig0, mig2):
        assert mig["parent_uuid"] == mig_parent["uuid"]
        assert mig["mig_profile"] == "1g.5gb"
        assert mig["model"] == "NVIDIA A100-SXM4-40GB"
        assert mig["utilization_signal"] == "ProcessPresence"
        assert mig["energy_millijoules"] is None
    assert mig0["utilization_percent"] == 100.0
    assert mig0["processes"] == [{"pid": 77, "used_memory_bytes": 2**30}]
    assert mig2["utilization_percent"] == 0.0
    assert lost["state"] == "Lost"
    assert lost["index"] == 2
    assert "lost" in lost["message"].lower()


def test_gpm_sm_activity_from_the_second_sample_on(fake_lib_dir: Path, repo_root: Path) -> None:
    """GPM compares two samples: the first sample has only the duty cycle, the second the SM
    activity between them, per MIG instance too (an H100 with MIG); the A100 has no GPM."""
    out = probe(fake_lib_dir, repo_root, SAMPLES="2")
    full, mig_parent, mig0, mig2, lost = out["devices"]
    assert (full["utilization_percent"], full["utilization_signal"]) == (37.5, "SmActivity")
    assert mig_parent["utilization_signal"] == "None"
    assert [m["utilization_signal"] for m in (mig0, mig2)] == ["ProcessPresence"] * 2  # A100
    assert lost["state"] == "Lost"
    assert out["gpm_live"] == 0, "GPM samples leaked past close()"

    h100_mig = probe(fake_lib_dir, repo_root, SAMPLES="2", FAKE_NVML_H100_MIG="1")
    _, parent, mig0, mig2, _ = h100_mig["devices"]
    assert parent["utilization_percent"] is None
    # Slot 0 is busy (60 %); slot 2 holds no process and is at 0 %: a real per-instance
    # signal, where presence would call any instance with a CUDA context busy.
    assert [(m["utilization_percent"], m["utilization_signal"]) for m in (mig0, mig2)] == [
        (60.0, "SmActivity"),
        (0.0, "SmActivity"),
    ]
    assert h100_mig["gpm_live"] == 0

    first = probe(fake_lib_dir, repo_root, FAKE_NVML_H100_MIG="1")["devices"]
    assert first[0]["utilization_signal"] == "DutyCycle"  # nothing to compare with yet
    assert [m["utilization_signal"] for m in first[2:4]] == ["ProcessPresence"] * 2


def test_driver_not_loaded_is_a_clear_state(fake_lib_dir: Path, repo_root: Path) -> None:
    out = probe(fake_lib_dir, repo_root, FAKE_NVML_INIT_ERROR="9")
    reason, message = out["unavailable"]
    assert reason == "DriverNotLoaded"
    assert "driver" in message


def test_missing_library_is_a_clear_state(repo_root: Path) -> None:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("a real libnvidia-ml.so.1 is installed here")
    reason, message = probe(None, repo_root)["unavailable"]
    assert reason == "LibraryNotFound"
    assert "libnvidia-ml.so.1" in message
