"""Admission budget checks answered by the leader, whichever replica the API server called.

The figures a budget check needs (usage, the running sandboxes, the reservations of admissions
not yet seen by a pass) live in the leader's accounting loop. A standby deciding from its own
memory would let a burst spread over replicas pass a cap, so a standby sends the check to the
leader and answers with the leader's decision.

The leader advertises where it answers (an annotation on the Lease, controller/leader.py): its
metrics server, which serves `POST /peer/budget-check`. Requests and answers are signed with
HMAC-SHA256 under a key every replica has and nobody else: the webhook TLS key all replicas
mount, or in the playground the operator's token. An unsigned or stale request is refused, so
nobody else can spend a budget's reservations or forge an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web

from sandboxer.controller.config import OperatorConfig
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest

PATH = "/peer/budget-check"
SIGNATURE = "X-Sandboxer-Signature"
MAX_SKEW = 60.0  # seconds a signed request stays valid (replicas' clocks are NTP-synced)
UNAVAILABLE = "LeaderUnavailable"


def peer_key(config: OperatorConfig) -> bytes | None:
    """The shared signing key, read each time so a renewed certificate is picked up."""
    if config.webhook_key:
        try:
            return Path(config.webhook_key).read_bytes()
        except OSError:
            return None
    if config.dev and config.token:
        return config.token.encode()
    return None


def advertised_url(config: OperatorConfig) -> str | None:
    """Where this replica's peer endpoint answers, for the Lease annotation."""
    if config.metrics_port is None:
        return None
    if config.dev:
        return f"http://127.0.0.1:{config.metrics_port}{PATH}"
    pod_ip = os.environ.get("SANDBOXER_POD_IP")  # the chart sets it (downward API)
    return f"http://{pod_ip}:{config.metrics_port}{PATH}" if pod_ip else None


def sign(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def _request_from(data: dict[str, Any]) -> BudgetRequest:
    fields = dict(data["request"])
    fields["groups"] = tuple(fields.get("groups") or ())
    return BudgetRequest(**fields)


def unavailable(why: str) -> BudgetDecision:
    return BudgetDecision(
        False,
        f"The budget check could not be made: {why}. Nothing was stored; try again in a few "
        "seconds.",
        UNAVAILABLE,
    )


async def ask(
    session: aiohttp.ClientSession, url: str, key: bytes, request: BudgetRequest
) -> BudgetDecision:
    """The leader's decision on `request`, or a refusal that says why there is none."""
    nonce = secrets.token_hex(12)
    body = json.dumps(
        {"request": asdict(request), "issued": time.time(), "nonce": nonce}, sort_keys=True
    ).encode()
    headers = {SIGNATURE: sign(key, body), "Content-Type": "application/json"}
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            answer = await resp.read()
            if resp.status != 200:
                return unavailable(f"the leader answered HTTP {resp.status}: {answer[:200]!r}")
            if not hmac.compare_digest(sign(key, answer), resp.headers.get(SIGNATURE, "")):
                return unavailable("the leader's answer is not signed with the shared key")
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return unavailable(f"the leader at {url} is not reachable ({type(exc).__name__})")
    data = json.loads(answer)
    if data.get("nonce") != nonce:
        return unavailable("the leader's answer is for another request")
    return BudgetDecision(bool(data["allowed"]), str(data["message"]), str(data["reason"]))


Decide = Callable[[BudgetRequest], Awaitable[BudgetDecision | None]]


def add_route(
    app: aiohttp.web.Application, key: Callable[[], bytes | None], decide: Decide
) -> None:
    """`POST /peer/budget-check` on the leader; `decide` returns None when not leading."""

    async def budget_check(req: aiohttp.web.Request) -> aiohttp.web.Response:
        secret = key()
        body = await req.read()
        if secret is None or not hmac.compare_digest(
            sign(secret, body), req.headers.get(SIGNATURE, "")
        ):
            return aiohttp.web.Response(status=403, text="not signed with the replicas' key")
        try:
            data = json.loads(body)
            request = _request_from(data)
            fresh = abs(time.time() - float(data["issued"])) <= MAX_SKEW
        except (ValueError, KeyError, TypeError) as exc:
            return aiohttp.web.Response(status=400, text=f"bad budget check: {exc}")
        if not fresh:
            return aiohttp.web.Response(status=403, text="stale budget check")
        decision = await decide(request)
        if decision is None:
            return aiohttp.web.Response(status=503, text="this replica is not the leader")
        answer = json.dumps({**asdict(decision), "nonce": data.get("nonce")}).encode()
        headers = {SIGNATURE: sign(secret, answer), "Content-Type": "application/json"}
        return aiohttp.web.Response(body=answer, headers=headers)

    app.router.add_post(PATH, budget_check)


async def wait_changed(event: asyncio.Event, seconds: float) -> None:
    """Until `event` is set or `seconds` pass, whichever is first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
