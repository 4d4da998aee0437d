"""The operator's Jupyter activity reader against a real Jupyter Server (from PyPI), on loopback.

The server gets the token the operator derives from the install's key; the reader must see a
user's API calls move `last_activity`, must not move it itself, and must say why when the token
is wrong or nothing listens.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from sandboxer.controller.jupyter_activity import JupyterActivity, Target, read_status
from sandboxer.loop.snapshot import JupyterReading
from sandboxer.manifests.secret import derived_token

KEY = b"the install's token key"
UID = "6f1c2a9e-0000-4000-8000-000000000001"
TOKEN = derived_token(KEY, "team-ml", "nb", UID)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Jupyter Server on 127.0.0.1 with the derived token; yields its base URL."""
    home = tmp_path_factory.mktemp("jupyter")
    port = _free_port()
    env = {**os.environ, "JUPYTER_TOKEN": TOKEN, "HOME": str(home),
           "JUPYTER_CONFIG_DIR": str(home / "c"), "JUPYTER_DATA_DIR": str(home / "d"),
           "JUPYTER_RUNTIME_DIR": str(home / "r")}  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", "--allow-root",
         "--ServerApp.open_browser=False", f"--ServerApp.root_dir={home}"],
        env=env, stdout=(home / "log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    async def up() -> None:
        async with asyncio.timeout(60), aiohttp.ClientSession() as http:
            while True:
                assert proc.poll() is None, (home / "log").read_text()
                try:
                    async with http.get(f"{url}/api") as resp:
                        if resp.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)

    asyncio.run(up())
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_users_api_call_moves_last_activity_and_asking_does_not(
    jupyter: str, http: aiohttp.ClientSession
) -> None:
    first = await read_status(http, f"{jupyter}/api/status", TOKEN)
    assert isinstance(first, JupyterReading), first
    again = await read_status(http, f"{jupyter}/api/status", TOKEN)
    assert isinstance(again, JupyterReading)
    assert again.last_activity == first.last_activity  # the status request is not activity
    # The user lists their files (what JupyterLab does when they open the file browser).
    async with http.get(f"{jupyter}/api/contents", headers={"Authorization": f"token {TOKEN}"}):
        pass
    later = await read_status(http, f"{jupyter}/api/status", TOKEN)
    assert isinstance(later, JupyterReading)
    assert later.last_activity > first.last_activity
    assert (later.kernels, later.connections) == (0, 0)


async def test_a_wrong_token_or_nothing_listening_is_said(
    jupyter: str, http: aiohttp.ClientSession
) -> None:
    wrong = await read_status(http, f"{jupyter}/api/status", derived_token(b"other", "a", "b", UID))
    assert wrong == "Jupyter refused the token (HTTP 403)"
    nothing = await read_status(http, f"http://127.0.0.1:{_free_port()}/api/status", TOKEN)
    assert isinstance(nothing, str) and nothing.startswith("Jupyter not reachable")


async def test_the_poller_asks_each_notebook_once_per_interval(jupyter: str) -> None:
    port = int(jupyter.rsplit(":", 1)[1])
    poller = JupyterActivity(KEY, interval=3600.0, port=port)
    target = Target(("team-ml", "nb"), UID, "127.0.0.1")
    try:
        first = await poller.refresh([target])
        second = await poller.refresh([target])
    finally:
        await poller.close()
    assert isinstance(first[target.key], JupyterReading), first
    assert second == first and poller.requests == 1
    assert await JupyterActivity(None, 1.0).refresh([target]) == {
        target.key: "no token key is configured (SANDBOXER_TOKEN_KEY_FILE), so tokens are random"
    }


def test_tokens_derive_from_the_key_and_the_sandboxes_identity(tmp_path: Path) -> None:
    assert derived_token(KEY, "team-ml", "nb", UID) == TOKEN
    assert len(TOKEN) == 43 and "=" not in TOKEN
    others = {
        derived_token(KEY, "team-ml", "nb", "another-uid"),
        derived_token(KEY, "team-ml", "nb2", UID),
        derived_token(b"k2", "team-ml", "nb", UID),
    }
    assert TOKEN not in others and len(others) == 3
