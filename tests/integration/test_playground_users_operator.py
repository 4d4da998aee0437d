"""The playground from each user's seat, and an operator that runs as its own process.

Users pick their kubeconfig context (`--context alice`), as they would on a cluster, so the
namespace comes from the context; `sandboxer dev --external-operator` serves without the
operator, and `KUBECONFIG=<file> sandboxer operator --dev` joins it, killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sandboxer.devcluster.binaries import kubectl as kubectl_binary
from sandboxer.devcluster.devsettings import load
from sandboxer.devcluster.playground import Playground
from sandboxer.manifests.labels import TEAM_LABEL
from tests.integration.conftest import ROOT, Result, eventually

SANDBOX = str(ROOT / "examples" / "sandbox.yaml")
NOT_RUNNING = "Sandboxer admission is not running yet: nothing was stored"
CLI = "from sandboxer.cli import main; main()"


def sandbox(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "sandboxer.io/v1alpha1",
            "kind": "ExperimentSandbox",
            "metadata": {"name": name},
            "spec": {"class": "h100", "gpus": 1},
        }
    )


async def ctl(
    kubeconfig: Path, context: str, *args: str, input: str | None = None, check: bool = True
) -> Result:
    """The real kubectl as the user of `context` (its namespace unless -n says otherwise)."""
    proc = await asyncio.create_subprocess_exec(
        str(kubectl_binary()), "--kubeconfig", str(kubeconfig),
        "--cache-dir", str(kubeconfig.parent / "kube-cache"), "--context", context, *args,
        stdin=asyncio.subprocess.PIPE if input is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(
        proc.communicate(input.encode() if input is not None else None), timeout=90
    )
    result = Result(proc.returncode or 0, out.decode(), err.decode())
    if check and result.rc != 0:
        raise AssertionError(f"kubectl {' '.join(args)} as {context}: {result.stderr}")
    return result


async def test_each_user_gets_their_team_namespace(playground: Playground) -> None:
    config = playground.kubeconfig_path
    teams = await ctl(config, "admin", "get", "ns", "-l", TEAM_LABEL, "-o", "json")
    labels = {
        ns["metadata"]["name"]: ns["metadata"]["labels"][TEAM_LABEL] for ns in teams.json()["items"]
    }
    assert labels == {"team-ml": "team-ml", "team-vision": "team-vision"}

    # alice's context lands in team-ml without -n; the owner and groups come from her token.
    await ctl(config, "alice", "apply", "-f", SANDBOX)
    await ctl(config, "alice", "wait", "--for=condition=Ready", "esb/my-notebook", "--timeout=60s")
    esb = (await ctl(config, "alice", "get", "esb", "my-notebook", "-o", "json")).json()
    assert esb["metadata"]["namespace"] == "team-ml"
    assert esb["spec"]["owner"] == "alice"
    assert "team-ml" in esb["metadata"]["annotations"]["sandboxer.io/owner-groups"].split(",")

    # carol shares team-ml: she sees alice's sandbox in her default namespace; bob does not.
    shared = await ctl(config, "carol", "get", "esb", "-o", "jsonpath={.items[*].spec.owner}")
    assert shared.stdout.split() == ["alice"]
    vision = await ctl(config, "bob", "get", "esb", "-o", "json")
    assert vision.json()["items"] == []
    # Each is authenticated as themselves: no example budget names carol, and the refusal
    # says who asked, with her team's group, in her team's namespace.
    refused = await ctl(config, "carol", "create", "-f", "-", input=sandbox("carols"), check=False)
    assert refused.rc != 0
    assert "no ComputeBudget covers carol (groups: system:authenticated, team-ml)" in refused.stderr
    assert "in namespace team-ml" in refused.stderr
    await ctl(config, "bob", "apply", "-f", SANDBOX)
    bobs = (await ctl(config, "bob", "get", "esb", "my-notebook", "-o", "json")).json()
    assert (bobs["metadata"]["namespace"], bobs["spec"]["owner"]) == ("team-vision", "bob")
    # admin is cluster-wide and defaults to `default`.
    everyone = await ctl(config, "admin", "get", "esb", "-A", "-o", "json")
    assert sorted(
        (i["metadata"]["namespace"], i["spec"]["owner"]) for i in everyone.json()["items"]
    ) == [("team-ml", "alice"), ("team-vision", "bob")]
    assert (await ctl(config, "admin", "get", "esb", "-o", "json")).json()["items"] == []


@pytest.mark.parametrize("external", [False, True], ids=["operator", "external-operator"])
async def test_apply_the_moment_the_kubeconfig_appears(tmp_path: Path, external: bool) -> None:
    """Whoever waits for the file finds admission in place: each sandbox gets its owner,
    or (no operator yet) is refused; none is ever stored without one."""
    for attempt in range(3):
        config = tmp_path / f"run-{attempt}" / "kubeconfig"
        pg = Playground(
            nodes=1, gpus_per_node=4, sample_interval=0.2, report_interval=0.5,
            ledger_dir=tmp_path / f"run-{attempt}" / "ledger", loop_interval=0.5,
            kubeconfig=config, examples=ROOT / "examples", external_operator=external,
        )  # fmt: skip
        starting = asyncio.create_task(pg.start())
        try:
            await eventually(config.exists, within=60, message="the kubeconfig")
            applied = await ctl(config, "alice", "apply", "-f", SANDBOX, check=False)
            await starting
            stored = pg.cluster.list("sandboxer.io/v1alpha1", "ExperimentSandbox")
            if external:
                assert applied.rc != 0
                assert NOT_RUNNING in applied.stderr
                assert stored == []
            else:
                assert applied.rc == 0, applied.stderr
                assert [s["spec"].get("owner") for s in stored] == ["alice"]
        finally:
            with contextlib.suppress(BaseException):
                await starting
            await pg.stop()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Operator:
    """`KUBECONFIG=<file> sandboxer operator --dev` as its own process, logging to a file."""

    def __init__(self, kubeconfig: Path, log: Path, *args: str) -> None:
        """`args`: more flags, e.g. another --webhook-port for a second replica."""
        self.kubeconfig, self.log, self.args = kubeconfig, log, args
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, *, admitted: bool = True) -> None:
        """Started once its webhooks listen and (with `admitted`) admit a dry run."""
        settings = load(str(self.kubeconfig))
        assert settings is not None, "the playground wrote no dev settings"
        port = settings.settings.webhook_port
        if "--webhook-port" in self.args:
            port = int(self.args[self.args.index("--webhook-port") + 1])
        assert not _port_open(port), "something already serves the webhooks"
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig)}
        with self.log.open("a") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLI, "operator", "--dev", "--log-format", "console",
                *self.args, env=env, stdout=log, stderr=log,
            )  # fmt: skip

        def up() -> bool:
            assert self.proc is not None and self.proc.returncode is None, self.log.read_text()
            return _port_open(port)

        await eventually(up, within=90, message="the operator's webhooks")
        if not admitted:
            return
        # Its webhooks answer before kopf has filled the budget index (the gate then refuses
        # for "no ComputeBudget"); a server-side dry run that is admitted says it is all there.
        deadline = asyncio.get_running_loop().time() + 90
        while (await self.dry_run()).rc != 0:
            assert asyncio.get_running_loop().time() < deadline, "never admitted a dry run"

    async def dry_run(self) -> Result:
        return await ctl(
            self.kubeconfig, "alice", "create", "--dry-run=server", "-f", "-",
            input=sandbox("probe"), check=False,
        )  # fmt: skip

    async def stop(self, sig: signal.Signals) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        rc = await asyncio.wait_for(self.proc.wait(), timeout=60)
        self.proc = None
        return rc


@pytest.fixture
async def external_dev(tmp_path: Path) -> AsyncIterator[tuple[Path, Path]]:
    """`sandboxer dev --external-operator` as its own process; yields (kubeconfig, ledger)."""
    config, ledger = tmp_path / "dev" / "kubeconfig", tmp_path / "ledger"
    log = (tmp_path / "dev.log").open("w")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "dev", "--external-operator", "--kubeconfig", str(config),
        "--nodes", "1", "--gpus-per-node", "4", "--ledger", str(ledger),
        "--sample-interval", "0.2", "--report-interval", "0.5",
        "--prometheus-targets", str(tmp_path / "targets.json"),
        stdout=log, stderr=log,
    )  # fmt: skip
    log.close()

    def written() -> bool:
        assert proc.returncode is None, (tmp_path / "dev.log").read_text()
        return config.exists()

    try:
        await eventually(written, within=90, message="the playground's kubeconfig")
        yield config, ledger
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), timeout=60)
    assert proc.returncode == 0


async def until(
    fetch: Callable[[], Awaitable[dict[str, Any]]],
    what: str,
    test: Callable[[dict[str, Any]], bool],
    within: float,
) -> dict[str, Any]:
    """What `fetch` returns once `test` holds for it (each fetch is one kubectl round trip)."""
    deadline = asyncio.get_running_loop().time() + within
    while not test(seen := await fetch()):
        assert asyncio.get_running_loop().time() < deadline, f"no {what}: {seen}"
    return seen


async def events_about(
    config: Path, context: str, name: str, reason: str, *scope: str
) -> list[dict[str, Any]]:
    """The Events with `reason` about the object `name`, as `context` sees them."""
    listed = await ctl(
        config, context, "get", "events", *scope, "--field-selector",
        f"involvedObject.name={name}", "-o", "json",
    )  # fmt: skip
    return [e for e in listed.json()["items"] if e["reason"] == reason]


async def ready(config: Path, name: str) -> None:
    await ctl(config, "alice", "wait", "--for=condition=Ready", f"esb/{name}", "--timeout=90s")


async def test_external_operator_is_started_killed_and_started_again(
    external_dev: tuple[Path, Path], tmp_path: Path
) -> None:
    config, ledger = external_dev
    dev = load(str(config))
    assert dev is not None
    assert dev.settings.ledger_url == str(ledger.resolve())

    # No operator yet: the chart's failurePolicy Fail refuses, and nothing is stored.
    refused = await ctl(config, "alice", "create", "-f", "-", input=sandbox("early"), check=False)
    assert refused.rc != 0
    assert NOT_RUNNING in refused.stderr
    assert "sandboxer operator --dev" in refused.stderr
    missing = await ctl(config, "alice", "get", "esb", "early", check=False)
    assert "NotFound" in missing.stderr

    operator = Operator(config, tmp_path / "operator.log")
    await operator.start()
    await ctl(config, "alice", "create", "-f", "-", input=sandbox("first"))
    await ready(config, "first")
    first = (await ctl(config, "alice", "get", "esb", "first", "-o", "json")).json()
    assert first["spec"]["owner"] == "alice"
    # --prometheus-targets names where the external operator serves /metrics, and it does.
    groups = json.loads((tmp_path / "targets.json").read_text())
    [target] = [g["targets"][0] for g in groups if g["labels"]["job"] == "sandboxer-operator"]
    async with aiohttp.ClientSession() as http, http.get(f"http://{target}/metrics") as resp:
        assert resp.status == 200
        assert "controller_runtime_reconcile_total" in await resp.text()

    assert await operator.stop(signal.SIGKILL) == -signal.SIGKILL
    while_down = await ctl(config, "alice", "create", "-f", "-", input=sandbox("down"), check=False)
    assert NOT_RUNNING in while_down.stderr

    # Started again on the same kubeconfig: same webhook port, same ledger, and it works.
    await operator.start()
    await ctl(config, "alice", "create", "-f", "-", input=sandbox("second"))
    await ready(config, "second")
    await ready(config, "first")
    listed = await ctl(config, "alice", "get", "esb", "-o", "json")
    owners: dict[str, Any] = {
        i["metadata"]["name"]: i["spec"]["owner"] for i in listed.json()["items"]
    }
    assert owners == {"first": "alice", "second": "alice"}
    assert await operator.stop(signal.SIGTERM) == 0
    log = (tmp_path / "operator.log").read_text()
    assert log.count(f"ledger {ledger.resolve()}") == 2, log
