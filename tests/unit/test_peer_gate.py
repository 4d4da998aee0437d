"""The leader's budget-check endpoint and a standby's client, over HTTP on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import asdict

import aiohttp
import aiohttp.web
import pytest

from sandboxer.controller import peer_gate
from sandboxer.sandbox_rules import BudgetDecision, BudgetRequest

KEY = b"shared-by-the-replicas"
REQUEST = BudgetRequest(
    operation="CREATE", owner="alice", namespace="team-ml", name="nb", class_name="h100",
    gpus=2, billing_weight=1.0, dry_run=False, groups=("team-ml",),
)  # fmt: skip


class Leader:
    def __init__(self) -> None:
        self.asked: list[BudgetRequest] = []
        self.leading = True

    async def decide(self, request: BudgetRequest) -> BudgetDecision | None:
        if not self.leading:
            return None
        self.asked.append(request)
        return BudgetDecision(request.gpus <= 1, "too many (maxConcurrentGpus)", "Concurrency")


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Leader, aiohttp.ClientSession]]:
    leader = Leader()
    app = aiohttp.web.Application()
    peer_gate.add_route(app, lambda: KEY, leader.decide)
    runner = aiohttp.web.AppRunner(app)
    await runner.setup()
    site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession() as session:
        yield f"http://127.0.0.1:{port}{peer_gate.PATH}", leader, session
    await runner.cleanup()


async def test_the_leader_decides_and_the_standby_gets_its_answer(
    served: tuple[str, Leader, aiohttp.ClientSession],
) -> None:
    url, leader, session = served
    decision = await peer_gate.ask(session, url, KEY, REQUEST)
    assert decision == BudgetDecision(False, "too many (maxConcurrentGpus)", "Concurrency")
    assert leader.asked == [REQUEST]  # every field across, the groups as a tuple


async def test_a_replica_without_the_key_is_refused_and_spends_nothing(
    served: tuple[str, Leader, aiohttp.ClientSession],
) -> None:
    url, leader, session = served
    decision = await peer_gate.ask(session, url, b"another key", REQUEST)
    assert not decision.allowed and decision.reason == peer_gate.UNAVAILABLE
    assert "HTTP 403" in decision.message and "try again" in decision.message
    assert leader.asked == []


async def test_a_replayed_old_check_is_refused(
    served: tuple[str, Leader, aiohttp.ClientSession],
) -> None:
    url, leader, session = served
    body = json.dumps(
        {"request": asdict(REQUEST), "issued": time.time() - 600, "nonce": "n"}
    ).encode()
    headers = {peer_gate.SIGNATURE: peer_gate.sign(KEY, body)}
    async with session.post(url, data=body, headers=headers) as resp:
        assert resp.status == 403
        assert "stale" in await resp.text()
    assert leader.asked == []


async def test_a_replica_that_no_longer_leads_says_so(
    served: tuple[str, Leader, aiohttp.ClientSession],
) -> None:
    url, leader, session = served
    leader.leading = False
    decision = await peer_gate.ask(session, url, KEY, REQUEST)
    assert not decision.allowed and "HTTP 503" in decision.message


async def test_an_unreachable_leader_is_a_refusal_that_stores_nothing() -> None:
    async with aiohttp.ClientSession() as session:
        decision = await peer_gate.ask(session, "http://127.0.0.1:9/peer", KEY, REQUEST)
    assert not decision.allowed and decision.reason == peer_gate.UNAVAILABLE
    assert "not reachable" in decision.message and "Nothing was stored" in decision.message
