"""The demo story, checked step by step on a real playground (embedded API, operator, agents).

alice and bob get notebooks; alice's goes idle and is warned, then reclaimed; bob trains hard,
is warned and then suspended at his budget; his next request is refused with the reason; an
admin tops him up and he resumes; finance gets the month's FOCUS export. Every user action goes
through the real kubectl as that user. The demo exits non-zero unless every step happened.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandboxer import API_VERSION
from sandboxer.demo.view import Board
from sandboxer.devcluster import binaries

# Each user works in their kubeconfig context's namespace (alice in team-ml, bob in team-vision),
# as RBAC lets them; the demo's sandbox names are unique across those namespaces.
CLASS = "demo-h100"
BOB_BUDGET = "demo-bob"

SETUP = f"""
apiVersion: sandboxer.io/v1alpha1
kind: SandboxClass
metadata: {{name: {CLASS}}}
spec:
  image: quay.io/jupyter/pytorch-notebook:cuda12-2024-10-28
  gpu: {{model: H100, billingWeight: 1.0}}
  maxGpus: 4
  idle: {{after: 20s, warnBefore: 10s, threshold: 5}}
---
apiVersion: sandboxer.io/v1alpha1
kind: ComputeBudget
metadata: {{name: demo-alice}}
spec:
  subjects: [{{kind: User, name: alice}}]
  allowance: {{gpuHours: 1}}
  team: research
  costCenter: CC-1200
---
apiVersion: sandboxer.io/v1alpha1
kind: ComputeBudget
metadata: {{name: {BOB_BUDGET}}}
spec:
  subjects: [{{kind: User, name: bob}}]
  allowance: {{gpuHours: 0.015}}
  minRuntime: 5s
  warnAt: [50, 80]
  onExhausted: Suspend
  team: vision
  costCenter: CC-4410
---
apiVersion: sandboxer.io/v1alpha1
kind: RateCard
metadata: {{name: demo-prices}}
spec:
  currency: USD
  prices:
  - {{model: H100, effectiveFrom: "2026-01-01T00:00:00Z", listPrice: 4.0, contractedPrice: 2.9}}
"""


def sandbox(name: str, gpus: int, utilization: int) -> str:
    return f"""
apiVersion: sandboxer.io/v1alpha1
kind: ExperimentSandbox
metadata:
  name: {name}
  annotations: {{sim.sandboxer.io/gpu-utilization: "{utilization}"}}
spec: {{class: {CLASS}, gpus: {gpus}}}
"""


class StoryFailed(RuntimeError):
    """A step did not happen as the story says; the message says which and what was seen."""


@dataclass
class Result:
    steps: list[tuple[str, float]] = field(default_factory=list)
    refusal: str = ""
    export: dict[str, Any] = field(default_factory=dict)


class Story:
    def __init__(self, pg: Any, board: Board, *, timeout: float = 90.0) -> None:
        self.pg = pg
        self.board = board
        self.timeout = timeout
        self.started = time.monotonic()
        self.result = Result()

    # -- helpers -----------------------------------------------------------------------------

    async def kubectl(self, user: str, *args: str, stdin: str | None = None) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            str(binaries.kubectl()), "--kubeconfig", str(self.pg.kubeconfig_path),
            "--context", user, *args,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await proc.communicate(stdin.encode() if stdin else None)
        return proc.returncode or 0, (out + err).decode().strip()

    async def must(self, user: str, *args: str, stdin: str | None = None) -> str:
        rc, text = await self.kubectl(user, *args, stdin=stdin)
        if rc != 0:
            raise StoryFailed(f"kubectl {' '.join(args)} as {user} failed: {text}")
        return text

    def sandbox(self, name: str) -> dict[str, Any]:
        found = self.pg.cluster.list(API_VERSION, "ExperimentSandbox")
        return next((o for o in found if o["metadata"]["name"] == name), {})

    async def until(
        self, what: str, check: Callable[[], bool] | Callable[[], Awaitable[bool]]
    ) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            self.board.refresh()
            outcome = check()
            if outcome if isinstance(outcome, bool) else await outcome:
                self.step(what)
                return
            if time.monotonic() > deadline:
                raise StoryFailed(f"timed out after {self.timeout:.0f}s waiting until {what}")
            await asyncio.sleep(0.2)  # polling the in-process API, which has no push channel here

    def step(self, text: str) -> None:
        at = time.monotonic() - self.started
        self.result.steps.append((text, at))
        self.board.say(f"[{at:5.1f}s] {text}")

    def condition(self, name: str, type_: str) -> tuple[str, str]:
        for cond in self.sandbox(name).get("status", {}).get("conditions", []):
            if cond.get("type") == type_:
                return cond.get("status", ""), cond.get("reason", "")
        return "", ""

    def suspended_for(self, name: str, reason: str) -> bool:
        obj = self.sandbox(name)
        return bool(obj.get("spec", {}).get("suspend")) and (
            obj.get("status", {}).get("suspendedReason") == reason
        )

    def events(self, name: str) -> list[str]:
        return [
            e.get("reason", "")
            for e in self.pg.cluster.list("v1", "Event")
            if e.get("involvedObject", {}).get("name") == name
        ]

    # -- the story ---------------------------------------------------------------------------

    async def run(self) -> Result:
        await self.must("admin", "apply", "-f", "-", stdin=SETUP)
        self.step(
            f"admin created class {CLASS} (idle after 20s), budgets for alice and bob, and prices"
        )
        await self.must("alice", "apply", "-f", "-", stdin=sandbox("alice-notebook", 1, 0))
        await self.must("bob", "apply", "-f", "-", stdin=sandbox("bob-training", 2, 95))
        self.step("alice applied a 1-GPU notebook; bob applied a 2-GPU training sandbox")
        owner = self.sandbox("alice-notebook").get("spec", {}).get("owner")
        if owner != "alice":
            raise StoryFailed(f"owner was stamped {owner!r}, expected 'alice'")
        await self.until(
            "both sandboxes are Ready (owner stamped from the kubectl identity)",
            lambda: all(
                self.condition(n, "Ready")[0] == "True" for n in ("alice-notebook", "bob-training")
            ),
        )
        await self.until(
            "alice's GPU sat idle: warned before reclaim (Idle=True, IdleWarning)",
            lambda: self.condition("alice-notebook", "Idle") == ("True", "IdleWarning"),
        )
        await self.until(
            "alice's idle GPU went back to the pool (suspended: Idle, workspace kept)",
            lambda: self.suspended_for("alice-notebook", "Idle"),
        )
        await self.until(
            "bob burned through his budget: warned, then suspended (BudgetExhausted)",
            lambda: self.suspended_for("bob-training", "BudgetExhausted"),
        )
        if "BudgetWarning" not in self.events("bob-training"):
            raise StoryFailed("bob was suspended without a BudgetWarning event first")
        rc, text = await self.kubectl("bob", "apply", "-f", "-", stdin=sandbox("bob-more", 1, 50))
        if rc == 0 or BOB_BUDGET not in text:
            raise StoryFailed(f"bob's new sandbox should be refused naming {BOB_BUDGET}: {text}")
        self.result.refusal = text.splitlines()[-1]
        self.step(f"bob's next sandbox was refused: {self.result.refusal}")
        await self.must(
            "admin", "patch", "computebudget", BOB_BUDGET, "--type", "merge",
            "-p", json.dumps({"spec": {"allowance": {"gpuHours": 1}}}),
        )  # fmt: skip
        self.step("admin topped up bob's budget to 1 GPU-hour")
        await self.must(
            "bob", "patch", "esb", "bob-training", "--type", "merge",
            "-p", json.dumps({"spec": {"suspend": False}}),
        )  # fmt: skip
        await self.until(
            "bob resumed the same sandbox and workspace: Ready again",
            lambda: (
                self.condition("bob-training", "Ready")[0] == "True"
                and not self.sandbox("bob-training").get("spec", {}).get("suspend")
            ),
        )
        return self.result


async def run_demo(
    out_dir: Path,
    *,
    live: bool,
    echo: Callable[[str], None] = print,
    step_timeout: float = 90.0,
) -> Result:
    """Run the story on a fresh playground, then export the month to `out_dir`."""
    from sandboxer.chargeback.export import export_period
    from sandboxer.devcluster.playground import Playground
    from sandboxer.ledger import checkpoint
    from sandboxer.ledger.store import open_store
    from sandboxer.loop.snapshot import merged_rate_card

    ledger_dir = out_dir / "ledger"
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    # The demo's class as a file of its own: what `sandboxer replay --idle-policy` takes.
    await asyncio.to_thread((out_dir / f"{CLASS}.yaml").write_text, SETUP.split("---")[0].lstrip())
    board = Board(live=live, echo=echo)
    async with Playground(
        nodes=2,
        gpus_per_node=4,
        sample_interval=0.5,
        report_interval=1.0,
        ledger_dir=ledger_dir,
        operator_overrides={
            "loop_interval": 0.5,
            "usage_refresh": 1.0,
            "budget_refresh": 1.0,
            "unknown_pod_grace": 5.0,
            "checkpoint_interval": 0.0,
        },
    ) as pg:
        board.attach(pg.cluster)
        story = Story(pg, board, timeout=step_timeout)
        with board:
            result = await story.run()
            cards = {
                c["metadata"]["name"]: c.get("spec", {})
                for c in pg.cluster.list(API_VERSION, "RateCard")
            }
    # The playground is gone: close its books and hand finance the month.
    now = datetime.now(UTC)
    store = open_store(str(ledger_dir))
    checkpoint.flush(store, merged_rate_card(cards), now)
    export = export_period(f"{now:%Y-%m}", store, str(out_dir / "export"), {"parquet", "csv"})
    result.export = {
        "rows": export.rows,
        "gpu_hours": round(export.gpu_hours, 4),
        "billed_cost": {k: round(v, 4) for k, v in export.billed_cost.items()},
        "manifest": export.manifest_key,
        "files": list(export.files),
    }
    if export.rows == 0:
        raise StoryFailed("the export holds no usage rows; metering did not reach the ledger")
    story.step(
        f"finance export written to {out_dir / 'export'}: {export.rows} FOCUS rows, "
        f"{export.gpu_hours:.4f} GPU-hours, billed {result.export['billed_cost']}"
    )
    return result
