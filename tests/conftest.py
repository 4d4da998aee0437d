"""Suite-wide markers: each test directory is a layer; gpu and e2e skip with a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_LAYERS = ("unit", "contract", "integration", "gpu", "e2e")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        if parts and parts[0] in _LAYERS:
            item.add_marker(getattr(pytest.mark, parts[0]))
        if item.get_closest_marker("e2e") and not os.environ.get("SANDBOXER_E2E_KUBECONFIG"):
            item.add_marker(pytest.mark.skip(reason="SANDBOXER_E2E_KUBECONFIG is not set"))


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
