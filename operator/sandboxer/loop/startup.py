"""Start timeouts in the loop: suspend sandboxes whose scheduled pod never became Ready.

The rule (`reclaim/startup.py`) reads only the sandbox's status, so there is nothing to seed after
a restart. The memory here only keeps one decision per not-Ready period from being repeated while
the suspension has not reached the index yet. The `Started` condition is this module's: False
with reason StartFailed when it suspends, True again once the notebook is Ready.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import parse_duration
from sandboxer.loop.results import Conditions, PassResult, Suspends
from sandboxer.loop.settings import LoopSettings
from sandboxer.loop.snapshot import Snapshot
from sandboxer.manifests.labels import TEAM_LABEL
from sandboxer.reclaim.savings import reclaimed_gpu_hours
from sandboxer.reclaim.startup import StartFailed, check_startup, not_ready_since

WHAT_TO_DO = "fix the image or command, then set spec.suspend: false to start it again"


class StartupChecks:
    def __init__(self, settings: LoopSettings) -> None:
        self.settings = settings
        self._timeouts: dict[str, tuple[SandboxClassSpec, timedelta]] = {}
        self._decided: dict[str, datetime] = {}  # sandbox uid -> the not-Ready period suspended

    def _timeout(self, name: str, cls: SandboxClassSpec) -> timedelta:
        cached = self._timeouts.get(name)
        if cached is None or cached[0] is not cls:  # parsed once per class change
            cached = self._timeouts[name] = (cls, parse_duration(cls.startup_timeout))
        return cached[1]

    def run(
        self, snap: Snapshot, result: PassResult, suspends: Suspends, conditions: Conditions
    ) -> None:
        decided, self._decided = self._decided, {}
        for sb in snap.sandboxes.values():
            if not sb.running:
                continue
            started, ready = sb.condition("Started"), sb.condition("Ready")
            if started is not None and started[0] == "False" and ready and ready[0] == "True":
                conditions[sb.uid].append(("Started", "True", "NotebookReady", ""))
                continue
            cls = snap.classes.get(sb.spec.class_)
            if cls is None or sb.uid in suspends:
                continue  # no class: the handler reports it; suspended already in this pass
            since = not_ready_since(sb.status, sb.generation)
            if since is not None and decided.get(sb.uid) == since:
                self._decided[sb.uid] = since  # suspended; the index has not caught up yet
                continue
            timeout = self._timeout(sb.spec.class_, cls)
            outcome = check_startup(sb.status, sb.generation, timeout, snap.now)
            if not isinstance(outcome, StartFailed) or since is None:
                continue
            self._decided[sb.uid] = since
            saved = reclaimed_gpu_hours(
                sb.spec.gpus, cls.gpu.billing_weight, snap.now, self.settings.savings
            )
            team = snap.namespaces.get(sb.namespace, {}).get(TEAM_LABEL, sb.namespace)
            result.reclaimed.append((team, "StartFailed", saved))
            message = f"Suspended: {outcome.message}; {WHAT_TO_DO}"
            suspends[sb.uid] = ("StartFailed", message)
            conditions[sb.uid].append(("Started", "False", "StartFailed", outcome.message))
