"""The real kubectl and helm are extracted from the PyPI layer package and run."""

from __future__ import annotations

import subprocess

from sandboxer.devcluster import binaries


def test_kubectl_is_the_real_1_35_client() -> None:
    out = subprocess.run(
        [binaries.kubectl(), "version", "--client", "-o", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert '"minor": "35"' in out


def test_helm_is_helm_4() -> None:
    out = subprocess.run(
        [binaries.helm(), "version", "--short"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("v4.")
