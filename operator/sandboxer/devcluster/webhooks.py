"""Admission webhooks: AdmissionReview v1 over HTTP(S) to the registered configurations.

Mutating webhooks run first, in configuration order, and their JSON patches are applied; then
the validating ones. A denial becomes a 4xx with the webhook's message; an unreachable webhook
fails the request unless its `failurePolicy` is `Ignore`. `matchConditions` (CEL) and
`reinvocationPolicy` are not evaluated.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from sandboxer.devcluster.auth import User
from sandboxer.devcluster.errors import ApiError
from sandboxer.devcluster.patching import PatchError, json_patch
from sandboxer.devcluster.resources import ResourceType
from sandboxer.devcluster.selectors import match_label_selector

MUTATING = ("admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations")
VALIDATING = ("admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations")


@dataclass(frozen=True)
class AdmissionRequest:
    operation: str  # CREATE, UPDATE, DELETE
    rt: ResourceType
    namespace: str
    name: str
    obj: dict[str, Any] | None
    old: dict[str, Any] | None
    user: User
    subresource: str = ""
    dry_run: bool = False

    def review(self) -> dict[str, Any]:
        gvk = {"group": self.rt.group, "version": self.rt.version, "kind": self.rt.kind}
        gvr = {"group": self.rt.group, "version": self.rt.version, "resource": self.rt.plural}
        request: dict[str, Any] = {
            "uid": str(uuid.uuid4()),
            "kind": gvk,
            "resource": gvr,
            "requestKind": gvk,
            "requestResource": gvr,
            "name": self.name,
            "operation": self.operation,
            "userInfo": self.user.user_info(),
            "object": self.obj,
            "oldObject": self.old,
            "dryRun": self.dry_run,
        }
        if self.namespace:
            request["namespace"] = self.namespace
        if self.subresource:
            request["subResource"] = self.subresource
            request["requestSubResource"] = self.subresource
        return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}


def _rule_matches(rule: Mapping[str, Any], req: AdmissionRequest) -> bool:
    def has(values: Iterable[str] | None, value: str) -> bool:
        values = list(values or ())
        return "*" in values or value in values

    if not has(rule.get("operations"), req.operation):
        return False
    if not has(rule.get("apiGroups"), req.rt.group):
        return False
    if not has(rule.get("apiVersions"), req.rt.version):
        return False
    wanted = f"{req.rt.plural}/{req.subresource}" if req.subresource else req.rt.plural
    resources = list(rule.get("resources") or ())
    if req.subresource:
        ok = wanted in resources or "*/*" in resources or f"{req.rt.plural}/*" in resources
        ok = ok or f"*/{req.subresource}" in resources
    else:
        ok = wanted in resources or "*" in resources or "*/*" in resources
    scope = rule.get("scope", "*")
    if scope == "Namespaced" and not req.rt.namespaced:
        return False
    if scope == "Cluster" and req.rt.namespaced:
        return False
    return ok


class WebhookDispatcher:
    """Calls the webhooks registered in the store; `namespace_labels` resolves namespaceSelector."""

    def __init__(
        self,
        configurations: Callable[[tuple[str, str, str]], Iterable[dict[str, Any]]],
        namespace_labels: Callable[[str], Mapping[str, str]],
    ) -> None:
        self._configurations = configurations
        self._namespace_labels = namespace_labels
        self._session: aiohttp.ClientSession | None = None
        # Service references resolve here: (namespace, name) -> "host:port" (in-process webhooks).
        self.service_endpoints: dict[tuple[str, str], str] = {}
        self.calls = 0
        # Webhook name -> what to add when nothing answers (the playground's "start the operator").
        self.unreachable_hints: dict[str, str] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _matching(self, key: tuple[str, str, str], req: AdmissionRequest) -> list[dict[str, Any]]:
        out = []
        for config in self._configurations(key):
            for hook in config.get("webhooks") or []:
                if not any(_rule_matches(rule, req) for rule in hook.get("rules") or []):
                    continue
                labels = ((req.obj or req.old or {}).get("metadata") or {}).get("labels") or {}
                if not match_label_selector(hook.get("objectSelector"), labels):
                    continue
                if req.rt.namespaced and hook.get("namespaceSelector"):
                    ns_labels = self._namespace_labels(req.namespace)
                    if not match_label_selector(hook["namespaceSelector"], ns_labels):
                        continue
                out.append(hook)
        return out

    async def mutate(self, req: AdmissionRequest) -> dict[str, Any] | None:
        obj = req.obj
        for hook in self._matching(MUTATING, req):
            current = AdmissionRequest(
                req.operation,
                req.rt,
                req.namespace,
                req.name,
                obj,
                req.old,
                req.user,
                req.subresource,
                req.dry_run,
            )
            response = await self._call(hook, current)
            if response is None or not response.get("patch") or obj is None:
                continue
            try:
                ops = json.loads(base64.b64decode(response["patch"]))
                obj = json_patch(obj, ops)
            except (ValueError, PatchError) as exc:
                raise ApiError(
                    500,
                    "InternalError",
                    f'Internal error occurred: admission webhook "{hook.get("name")}" '
                    f"returned an invalid patch: {exc}",
                ) from exc
        return obj

    async def validate(self, req: AdmissionRequest) -> None:
        hooks = self._matching(VALIDATING, req)
        await asyncio.gather(*(self._call(hook, req) for hook in hooks))

    async def _call(self, hook: Mapping[str, Any], req: AdmissionRequest) -> dict[str, Any] | None:
        name = str(hook.get("name", "<unnamed>"))
        try:
            response = await self._post(hook, req.review())
        except (aiohttp.ClientError, TimeoutError, ValueError, ssl.SSLError) as exc:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return None
            hint = self.unreachable_hints.get(name)
            raise ApiError(
                500,
                "InternalError",
                f'Internal error occurred: failed calling webhook "{name}": '
                f"failed to call webhook: {exc or type(exc).__name__}"
                + (f". {hint}" if hint else ""),
            ) from exc
        if not response.get("allowed", False):
            status = response.get("status") or {}
            code = max(int(status.get("code") or 400), 400)
            message = status.get("message") or "without explanation"
            raise ApiError(
                code,
                status.get("reason") or "Forbidden",
                f'admission webhook "{name}" denied the request: {message}',
            )
        return response

    async def _post(self, hook: Mapping[str, Any], review: dict[str, Any]) -> dict[str, Any]:
        self.calls += 1
        client = hook.get("clientConfig") or {}
        url, server_name = self._url(client)
        context: ssl.SSLContext | None = None
        if url.startswith("https://"):
            bundle = client.get("caBundle")
            cadata = base64.b64decode(bundle).decode() if bundle else None
            context = ssl.create_default_context(cadata=cadata)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        timeout = aiohttp.ClientTimeout(total=float(hook.get("timeoutSeconds") or 10))
        async with self._session.post(
            url,
            json=review,
            ssl=context if context is not None else True,
            server_hostname=server_name,
            timeout=timeout,
        ) as resp:
            if resp.status != 200:
                raise ValueError(f"webhook answered HTTP {resp.status}")
            body = await resp.json(content_type=None)
        answer = body.get("response") if isinstance(body, dict) else None
        if not isinstance(answer, dict):
            raise ValueError("webhook answered without an AdmissionReview response")
        return answer

    def _url(self, client: Mapping[str, Any]) -> tuple[str, str | None]:
        if client.get("url"):
            return str(client["url"]), None
        service = client.get("service") or {}
        ns, name = service.get("namespace", ""), service.get("name", "")
        endpoint = self.service_endpoints.get((ns, name))
        if endpoint is None:
            raise ValueError(f"service {ns}/{name} has no endpoint in the dev cluster")
        path = service.get("path") or "/"
        return f"https://{endpoint}{path}", f"{name}.{ns}.svc"
