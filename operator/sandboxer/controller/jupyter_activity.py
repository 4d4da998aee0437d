"""What each notebook's user last did, from Jupyter Server's own `GET /api/status`.

Asked only for running sandboxes whose class sets `idle.useJupyterActivity`, directly at the
notebook pod's IP (the sandbox's NetworkPolicy admits the operator), with the token derived from
the install's token key (manifests/secret.py): the operator reads no Secret. Jupyter Server
answers `{"started", "last_activity", "kernels", "connections"}`; its `last_activity` moves with
kernel execution, terminals and API requests, and the status request itself is not counted
(Jupyter Server marks that handler untracked), so asking does not keep a notebook alive.

Each notebook is asked at most once per `interval`, a few at a time; what it said (or why it
could not be asked) is kept for the loop's pass. Nothing here is state the operator must keep:
a new leader asks again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from sandboxer.loop.snapshot import JupyterReading, Snapshot
from sandboxer.manifests.inputs import NOTEBOOK_PORT
from sandboxer.manifests.secret import derived_token

Key = tuple[str, str]  # (namespace, sandbox name)


@dataclass(frozen=True)
class Target:
    key: Key
    uid: str
    pod_ip: str


def targets(snap: Snapshot, pods: Mapping[Any, Any]) -> list[Target]:
    """Running sandboxes that want Jupyter activity, with the IP of their pod."""
    out: list[Target] = []
    for key, sb in snap.sandboxes.items():
        cls = snap.classes.get(sb.spec.class_)
        if not sb.running or cls is None or not cls.idle.use_jupyter_activity:
            continue
        stored = list(pods.get(key, ()))
        ip = ((stored[0].get("status") or {}).get("podIP") if stored else None) or None
        if ip:
            out.append(Target(key, sb.uid, ip))
    return out


def _parse_time(value: Any) -> datetime:
    stamp = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


async def read_status(session: aiohttp.ClientSession, url: str, token: str) -> JupyterReading | str:
    """The notebook's activity, or one line saying why it could not be read."""
    try:
        async with session.get(url, headers={"Authorization": f"token {token}"}) as resp:
            if resp.status in (401, 403):
                return f"Jupyter refused the token (HTTP {resp.status})"
            if resp.status != 200:
                return f"Jupyter answered HTTP {resp.status}"
            body = await resp.json(content_type=None)
        return JupyterReading(
            last_activity=_parse_time(body["last_activity"]),
            kernels=int(body.get("kernels", 0)),
            connections=int(body.get("connections", 0)),
            read_at=datetime.now(UTC),
        )
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        return f"Jupyter not reachable ({type(exc).__name__})"
    except (ValueError, KeyError, TypeError) as exc:
        return f"Jupyter's /api/status did not parse ({exc})"


class JupyterActivity:
    """The latest reading per notebook, refreshed at most every `interval` seconds."""

    def __init__(
        self, key: bytes | None, interval: float, *, parallel: int = 16, port: int = NOTEBOOK_PORT
    ) -> None:
        self.key = key
        self.port = port
        self.interval = interval
        self._parallel = asyncio.Semaphore(parallel)
        self._asked: dict[Key, float] = {}  # monotonic time of the last request
        self.readings: dict[Key, JupyterReading | str] = {}
        self.requests = 0
        self._http: aiohttp.ClientSession | None = None

    async def refresh(self, wanted: list[Target]) -> Mapping[Key, JupyterReading | str]:
        """Ask the notebooks that are due; the readings of every wanted one, old or new."""
        live = {t.key for t in wanted}
        for gone in set(self.readings) - live:
            self.readings.pop(gone, None)
            self._asked.pop(gone, None)
        if self.key is None:
            why = "no token key is configured (SANDBOXER_TOKEN_KEY_FILE), so tokens are random"
            return {t.key: why for t in wanted}
        now = time.monotonic()
        due = [t for t in wanted if now - self._asked.get(t.key, -1e18) >= self.interval]
        if due:
            if self._http is None:
                self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3))
            await asyncio.gather(*(self._ask(self._http, t) for t in due))
        return {t.key: self.readings[t.key] for t in wanted if t.key in self.readings}

    async def _ask(self, session: aiohttp.ClientSession, target: Target) -> None:
        assert self.key is not None
        namespace, name = target.key
        token = derived_token(self.key, namespace, name, target.uid)
        host = f"[{target.pod_ip}]" if ":" in target.pod_ip else target.pod_ip  # IPv6
        url = f"http://{host}:{self.port}/api/status"
        async with self._parallel:
            self._asked[target.key] = time.monotonic()
            self.requests += 1
            self.readings[target.key] = await read_status(session, url, token)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
