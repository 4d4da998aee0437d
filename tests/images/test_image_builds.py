"""The operator and agent images build with podman and run as non-root (`make images`).

No registry: the base is a Debian bookworm root filesystem made by mmdebstrap from Debian's
packages (python3, venv, pip), imported as `localhost/sandboxer-base:bookworm` and passed as
the Dockerfiles' PYTHON_IMAGE build argument, so the real `python:3.11.11-slim-bookworm` stays
the default. The build machine's CA bundle is copied into that base, for egress proxies that
inspect TLS. Image builds take minutes: `make test` skips them, `make images` runs them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = "localhost/sandboxer-base:bookworm"
TOOLS = ("podman", "mmdebstrap", "runc")
MISSING = [tool for tool in TOOLS if shutil.which(tool) is None]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")

pytestmark = [
    pytest.mark.skipif(
        bool(MISSING), reason=f"{', '.join(MISSING)} not installed (`make images` installs them)"
    ),
    pytest.mark.skipif(
        os.environ.get("SANDBOXER_BUILD_IMAGES") != "1",
        reason="image builds take minutes: run `make images` (sets SANDBOXER_BUILD_IMAGES=1)",
    ),
]


def podman(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"CONTAINERS_CONF": str(ROOT / "images" / "containers.conf")}
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> str:
    rootfs = tmp_path_factory.mktemp("base") / "rootfs.tar"
    hooks = [f"--customize-hook=upload {HOST_CA} {HOST_CA}"] if HOST_CA.is_file() else []
    made = subprocess.run(
        ["mmdebstrap", "--variant=minbase",
         "--include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates",
         *hooks, "bookworm", str(rootfs)],
        capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr[-3000:]
    # Debian's pip refuses system-wide installs (PEP 668); the python image's does not. uv
    # trusts its own roots unless told to use the system's (where the host's CA bundle is).
    changes = ["ENV PIP_BREAK_SYSTEM_PACKAGES=1", "ENV UV_NATIVE_TLS=1", "ENV UV_SYSTEM_CERTS=1"]
    ok(podman("import", *(f"--change={c}" for c in changes), str(rootfs), BASE))
    return BASE


@pytest.fixture(scope="module")
def sizes() -> Iterator[dict[str, int]]:
    found: dict[str, int] = {}
    yield found
    out = Path(os.environ.get("SANDBOXER_IMAGE_SIZES", ROOT / ".cache" / "image-sizes.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(found, indent=2) + "\n")


@pytest.mark.parametrize(("image", "command"), [("operator", "operator"), ("agent", "agent")])
def test_image_builds_and_runs_as_non_root(
    base: str, sizes: dict[str, int], image: str, command: str
) -> None:
    tag = f"localhost/sandboxer-{image}:test"
    ok(podman(
        "build", "--network", "host", "-f", f"images/{image}/Dockerfile",
        "--build-arg", f"PYTHON_IMAGE={base}", "-t", tag, str(ROOT),
    ))  # fmt: skip
    helped = ok(podman("run", "--rm", "--network", "none", tag, command, "--help"))
    assert "Usage" in helped and command in helped
    uid = ok(podman("run", "--rm", "--network", "none", "--entrypoint", "id", tag, "-u"))
    assert uid.strip() == "10001"
    size = json.loads(ok(podman("image", "inspect", tag)))[0]["Size"]
    sizes[image] = int(size)
    assert size < 1_500_000_000
