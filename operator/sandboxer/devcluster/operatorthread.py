"""The real operator beside the dev cluster, in a thread with its own event loop.

On exit kopf cancels every task of the loop it ran in; the API server's request handlers must
not be among them, so the operator never shares the cluster's loop.
"""

from __future__ import annotations

import asyncio
import socket
import threading

from sandboxer.controller.config import OperatorConfig
from sandboxer.controller.runner import run_operator
from sandboxer.devcluster.auth import OPERATOR_GROUPS, OPERATOR_USER
from sandboxer.devcluster.cluster import DevCluster
from sandboxer.devcluster.devsettings import DEV_JUPYTER_INTERVAL, DEV_LEASE_DURATION
from sandboxer.devcluster.rbac import policy
from sandboxer.devcluster.rbac.authorizer import CLUSTER_ROLES

__all__ = ["OPERATOR_GROUPS", "OPERATOR_USER", "OperatorThread", "playground_config"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def playground_config(
    cluster: DevCluster,
    *,
    webhooks: bool = True,
    ledger_url: str | None = None,
    loop_interval: float = 10.0,
) -> OperatorConfig:
    """Production settings, except: the cluster's URL and CA, and plain-HTTP webhooks on
    loopback that kopf registers itself (managed webhook configurations). Without a ledger
    the accounting/budget/idle loop does not run and every budget check passes."""
    token = operator_token(cluster)
    # kopf manages its webhook configurations: the chart's role with `webhook.managedByOperator`.
    cluster.apiserver.put_system(CLUSTER_ROLES, policy.operator_role(manages_webhooks=webhooks))
    return OperatorConfig(
        server=cluster.url,
        token=token,
        ca_data=cluster.tls.ca_pem.decode(),
        webhook_port=free_port() if webhooks else None,
        webhook_host="127.0.0.1",
        webhook_addr="127.0.0.1",
        dev=True,
        operator_users=(OPERATOR_USER,),
        class_retry_delay=2.0,
        ledger_url=ledger_url,
        loop_interval=loop_interval,
        metrics_port=free_port(),
        metrics_host="127.0.0.1",
        lease_duration=DEV_LEASE_DURATION,
        own_namespace=policy.NAMESPACE,  # the Lease where the chart's Role lets it write one
        jupyter_interval=DEV_JUPYTER_INTERVAL,
    )


def operator_token(cluster: DevCluster) -> str:
    """The operator service account's token (added to the cluster's users the first time)."""
    if OPERATOR_USER not in cluster.users.names():
        return cluster.add_user(OPERATOR_USER, (*OPERATOR_GROUPS, "system:authenticated"))
    return cluster.token(OPERATOR_USER)


class OperatorThread:
    def __init__(self, config: OperatorConfig) -> None:
        self.config = config
        self._stop, self._ready = threading.Event(), threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="sandboxer-operator", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(run_operator(self.config, stop_flag=self._stop, ready_flag=self._ready))
        except BaseException as exc:  # noqa: BLE001 - start() reports it in the caller's thread
            self._error = exc

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a thread's wait
        self._thread.start()
        ready = await asyncio.to_thread(self._ready.wait, timeout)
        if self._error is not None:
            raise RuntimeError(f"the operator failed to start: {self._error}") from self._error
        if not ready:
            raise RuntimeError(f"the operator did not become ready within {timeout:.0f} s")

    async def stop(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109 - a thread's join
        self._stop.set()
        await asyncio.to_thread(self._thread.join, timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the operator did not stop within {timeout:.0f} s")
