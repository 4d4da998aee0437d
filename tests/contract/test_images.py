"""The Dockerfiles pass hadolint and follow the image rules: pinned, multi-stage, non-root."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted((ROOT / "images").glob("*/Dockerfile"))
HADOLINT = Path(sys.executable).parent / "hadolint"
# An exact version tag (at least major.minor.patch) or a digest; never a floating tag.
PINNED = re.compile(r"^[\w./-]+(:[\w.-]*\d+\.\d+\.\d+[\w.-]*)?(@sha256:[a-f0-9]{64})?$")
SECRET_NAMES = re.compile(r"(PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY)", re.I)


def _instructions(path: Path) -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            word, _, rest = stripped.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _base_images(path: Path) -> list[str]:
    args: dict[str, str] = {}
    stages: set[str] = set()
    bases = []
    for word, rest in _instructions(path):
        if word == "ARG" and "=" in rest and not bases:
            name, _, default = rest.partition("=")
            args[name] = default
        elif word == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            if image not in stages:
                bases.append(image)
            if len(parts) == 3 and parts[1].upper() == "AS":
                stages.add(parts[2])
    return bases


def test_there_are_three_images() -> None:
    assert {p.parent.name for p in DOCKERFILES} == {"operator", "agent", "notebook"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_hadolint_passes(dockerfile: Path) -> None:
    proc = subprocess.run(
        [str(HADOLINT), "--format", "json", str(dockerfile)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    findings = json.loads(proc.stdout or "[]")
    assert not findings, "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_every_hadolint_ignore_is_justified(dockerfile: Path) -> None:
    lines = dockerfile.read_text().splitlines()
    for i, line in enumerate(lines):
        if "hadolint ignore=" in line:
            before = lines[i - 1].strip() if i else ""
            justified = before.startswith("#") and "hadolint" not in before
            assert justified, (
                f"{dockerfile}:{i + 1}: explain the ignore in a comment on the line above"
            )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_base_images_are_pinned_and_builds_are_multi_stage(dockerfile: Path) -> None:
    bases = _base_images(dockerfile)
    assert bases
    for image in bases:
        assert PINNED.match(image), f"{dockerfile}: base {image} is not pinned to an exact version"
    froms = [rest for word, rest in _instructions(dockerfile) if word == "FROM"]
    assert len(froms) >= 2, f"{dockerfile} should build in one stage and run in another"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_runs_as_non_root_with_a_healthcheck_and_no_secrets(dockerfile: Path) -> None:
    instructions = _instructions(dockerfile)
    users = [rest for word, rest in instructions if word == "USER"]
    assert users, f"{dockerfile} has no USER"
    assert users[-1].split(":")[0] not in ("root", "0"), f"{dockerfile} ends as root"
    assert any(word == "HEALTHCHECK" for word, _ in instructions)
    for word, rest in instructions:
        if word in ("ARG", "ENV"):
            assert not SECRET_NAMES.search(rest), f"{dockerfile}: secret-like {word} {rest}"


def test_notebook_user_is_jovyan_with_home_on_the_workspace() -> None:
    instructions = _instructions(ROOT / "images" / "notebook" / "Dockerfile")
    assert [r for w, r in instructions if w == "USER"][-1] == "1000:1000"
    assert ("WORKDIR", "/home/jovyan") in instructions
    assert any("--uid 1000" in r and "/home/jovyan" in r for w, r in instructions if w == "RUN")


def test_agent_image_has_no_cuda_toolkit() -> None:
    bases = _base_images(ROOT / "images" / "agent" / "Dockerfile")
    assert all(image.startswith("python:") and "slim" in image for image in bases)
    text = (ROOT / "images" / "agent" / "Dockerfile").read_text()
    assert "cuda" not in text.lower().replace("no cuda toolkit", "")


def test_dockerignore_keeps_local_state_and_keys_out_of_the_context() -> None:
    patterns = set((ROOT / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".venv-checkov", "*.key", "*.pem", ".env"} <= patterns
