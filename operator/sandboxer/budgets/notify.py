"""Slack-compatible notification payloads (incoming-webhook JSON). Pure: posting is elsewhere.

The payload carries `text` (the fallback every Slack-compatible receiver shows: Mattermost,
Rocket.Chat, Teams' Slack connector) and Block Kit `blocks` for a richer view. Text is escaped
as Slack's mrkdwn requires (&, <, >), so names cannot inject links or mentions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from sandboxer.budgets.enforcement import Action, Exhausted, Lifted, Warn

Severity = Literal["info", "warning", "critical"]
_ICON: dict[Severity, str] = {"info": ":information_source:", "warning": ":warning:",
                              "critical": ":rotating_light:"}  # fmt: skip


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def payload(
    title: str,
    message: str,
    *,
    severity: Severity = "info",
    facts: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One notification: a header, the message, and key facts as a context line."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": escape(message)}},
    ]
    if facts:
        line = "  ·  ".join(f"*{escape(k)}:* {escape(v)}" for k, v in sorted(facts.items()))
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line}]})
    return {"text": f"{_ICON[severity]} {escape(title)}: {escape(message)}", "blocks": blocks}


def budget_payload(action: Action) -> dict[str, Any]:
    st = action.status
    facts = {"budget": st.account.budget, "period": st.period.name}
    if st.account.kind != "Shared":
        facts[st.account.kind.lower()] = st.account.name
    if isinstance(action, Warn):
        return payload(
            f"Budget {st.account.budget} at {action.threshold}%",
            action.message,
            severity="warning",
            facts=facts,
        )
    if isinstance(action, Exhausted):
        facts["action"] = action.action
        return payload(
            f"Budget {st.account.budget} exhausted", action.message, severity="critical",
            facts=facts,
        )  # fmt: skip
    assert isinstance(action, Lifted)
    return payload(f"Budget {st.account.budget} available again", action.message, facts=facts)


def reclaim_payload(
    namespace: str, name: str, owner: str, warning: bool, reason: str, message: str
) -> dict[str, Any]:
    """An idle/lifetime warning or reclaim notice for one sandbox (`reclaim.policy` messages)."""
    what = "will be suspended" if warning else "was suspended"
    return payload(
        f"Sandbox {namespace}/{name} {what} ({reason})",
        message,
        severity="warning" if warning else "info",
        facts={"owner": owner, "sandbox": f"{namespace}/{name}", "reason": reason},
    )
