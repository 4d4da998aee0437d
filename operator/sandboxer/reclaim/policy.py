"""The reclaim policy in effect for one sandbox, and the Keep / Warn / Reclaim decision.

Class settings bound what a sandbox may choose: `idle.after` at most the class's `maxAfter`
(or the class's `after` when unset) and longer than `warnBefore`; `idle.disabled` only where the
class has `allowOptOut`; `lifetime` at most the class's `maxLifetime` when the class sets one.
Field-practice defaults come from the class model: idle after 60 min, warn 15 min before,
threshold 5 %, no maximum lifetime.

The decision anchors the idle window at the latest of: last activity, the last start or resume,
so a resumed sandbox always gets a full window (the Kubeflow #6648 re-cull after resume cannot
happen, whatever stale activity data says). Lifetime counts from the current run's first
Ready (status.startedAt).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from sandboxer.api.sandbox import ExperimentSandboxSpec
from sandboxer.api.sandboxclass import SandboxClassSpec
from sandboxer.api.types import format_duration, parse_duration

ReclaimReason = Literal["Idle", "Lifetime"]


class PolicyError(ValueError):
    """A sandbox asks for reclaim settings outside its class's bounds (for the webhook)."""


@dataclass(frozen=True, slots=True)
class ReclaimPolicy:
    idle_enabled: bool
    after: timedelta
    warn_before: timedelta
    threshold: float  # percent duty cycle at or below which a GPU is idle
    count_processes: bool
    use_jupyter_activity: bool
    max_lifetime: timedelta | None


@dataclass(frozen=True, slots=True)
class Keep:
    next_check: datetime | None  # when the decision could next change without new activity


@dataclass(frozen=True, slots=True)
class Warn:
    reason: ReclaimReason
    reclaim_at: datetime
    message: str


@dataclass(frozen=True, slots=True)
class Reclaim:
    reason: ReclaimReason
    message: str


Decision = Keep | Warn | Reclaim


def effective_policy(
    class_name: str, cls: SandboxClassSpec, sandbox: ExperimentSandboxSpec
) -> ReclaimPolicy:
    """Merge class and sandbox settings; raise PolicyError for an override out of bounds."""
    idle = cls.idle
    after = parse_duration(idle.after)
    warn_before = parse_duration(idle.warn_before)
    max_after = parse_duration(idle.max_after) if idle.max_after else after
    enabled = True
    if sandbox.idle is not None:
        if sandbox.idle.disabled:
            if not idle.allow_opt_out:
                raise PolicyError(
                    f"class {class_name} does not allow turning idle reclaim off; remove "
                    "idle.disabled or use a class that allows opting out"
                )
            enabled = False
        if sandbox.idle.after is not None:
            wanted = parse_duration(sandbox.idle.after)
            if wanted > max_after:
                raise PolicyError(
                    f"idle.after {sandbox.idle.after} is longer than class {class_name} allows "
                    f"({format_duration(max_after)}); set idle.after to "
                    f"{format_duration(max_after)} or less"
                )
            if wanted <= warn_before:
                raise PolicyError(
                    f"idle.after {sandbox.idle.after} must be longer than the class's warning "
                    f"time ({idle.warn_before}) so the warning can come first"
                )
            after = wanted
    class_lifetime = parse_duration(cls.max_lifetime) if cls.max_lifetime else None
    lifetime = class_lifetime
    if sandbox.lifetime is not None:
        wanted = parse_duration(sandbox.lifetime)
        if class_lifetime is not None and wanted > class_lifetime:
            raise PolicyError(
                f"lifetime {sandbox.lifetime} is longer than class {class_name} allows "
                f"({cls.max_lifetime}); set lifetime to {cls.max_lifetime} or less"
            )
        lifetime = wanted
    # Without GPUs there is no GPU signal: only Jupyter's activity could say such a sandbox is
    # in use, so without useJupyterActivity it is never idle-reclaimed.
    if sandbox.gpus == 0 and not idle.use_jupyter_activity:
        enabled = False
    return ReclaimPolicy(
        idle_enabled=enabled,
        after=after,
        warn_before=warn_before,
        threshold=float(idle.threshold),
        count_processes=idle.count_processes,
        use_jupyter_activity=idle.use_jupyter_activity,
        max_lifetime=lifetime,
    )


def decide(
    policy: ReclaimPolicy,
    *,
    now: datetime,
    started_at: datetime,
    last_active_at: datetime | None = None,
    resumed_at: datetime | None = None,
    idle_signals: str = "",
) -> Decision:
    """Keep, warn (`warnBefore` ahead) or reclaim one running sandbox.

    started_at: when the current run first became ready; lifetime counts from here.
    last_active_at: the last time any signal said busy (see `idle.Activity`).
    idle_signals: which signals said idle, for the message.
    """
    anchor = max(t for t in (started_at, resumed_at, last_active_at) if t is not None)
    due: list[tuple[datetime, ReclaimReason]] = []
    lifetime_start = max(started_at, resumed_at) if resumed_at else started_at
    if policy.max_lifetime is not None:
        due.append((lifetime_start + policy.max_lifetime, "Lifetime"))
    if policy.idle_enabled:
        due.append((anchor + policy.after, "Idle"))
    if not due:
        return Keep(None)
    at, reason = min(due, key=lambda d: (d[0], d[1] != "Lifetime"))  # lifetime wins a tie
    if now >= at:
        return Reclaim(reason, _message(reason, policy, anchor, lifetime_start, idle_signals))
    if now >= at - policy.warn_before:
        text = _message(reason, policy, anchor, lifetime_start, idle_signals)
        return Warn(reason, at, f"{text}; it will be suspended at {_hm(at)} unless used")
    return Keep(at - policy.warn_before)


def _message(
    reason: ReclaimReason,
    policy: ReclaimPolicy,
    anchor: datetime,
    lifetime_start: datetime,
    signals: str,
) -> str:
    if reason == "Lifetime":
        assert policy.max_lifetime is not None
        return (
            f"running since {_hm(lifetime_start)}, the maximum lifetime is "
            f"{format_duration(policy.max_lifetime)}"
        )
    text = f"idle since {_hm(anchor)} (window {format_duration(policy.after)})"
    return f"{text}: {signals}" if signals else text


def _hm(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
