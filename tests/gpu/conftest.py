"""Real-GPU tests: skipped unless NVML initialises on an NVIDIA GPU."""

from __future__ import annotations

import pytest


def _gpu_reason() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as exc:
        return f"no NVIDIA GPU/driver available: {exc}"
    try:
        if pynvml.nvmlDeviceGetCount() < 1:
            return "NVML found no GPU"
    finally:
        pynvml.nvmlShutdown()
    return None


_REASON = _gpu_reason()


@pytest.hookimpl(trylast=True)  # after the root conftest has added the directory markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _REASON:
        for item in items:
            if item.get_closest_marker("gpu"):
                item.add_marker(pytest.mark.skip(reason=_REASON))
