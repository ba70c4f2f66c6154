"""The ``webhook`` provider: one signed JSON POST per attempt to the operator's automation
(a cloud function, a hypervisor's API gateway, a CI job), the way users reach their own
infrastructure.

The body is ``{"id", "provider", "instance", "kind", "params", "reason"}`` where ``id`` is
the request's idempotency key, also sent as the ``Idempotency-Key`` header: every retry of
one request carries the same key, and a receiver that has acted on a key answers 2xx again
without acting. Signed as :mod:`mien.server.providers.signing` describes. A 2xx answer is
success (a JSON object in it is kept as the call's result); 408, 425, 429, 5xx, a timeout or
a refused connection may pass and are retried by the queue; any other answer is final.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import orjson

from mien.server.providers.base import ProviderOutcome, ProviderRequest
from mien.server.providers.signing import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    signature,
)

RETRYABLE = {408, 425, 429}


def body_of(request: ProviderRequest) -> bytes:
    return orjson.dumps(
        {
            "id": request.idempotency_key,
            "provider": request.provider,
            "instance": request.instance_id,
            "kind": request.kind,
            "params": dict(request.params),
            "reason": request.reason,
        }
    )


class WebhookProvider:
    def __init__(self, name: str, url: str, secret: str, timeout: float) -> None:
        self.name = name
        self.url = url
        self._secret = secret
        self.timeout = timeout

    async def call(self, request: ProviderRequest) -> ProviderOutcome:
        body = body_of(request)
        stamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: request.idempotency_key,
            TIMESTAMP_HEADER: str(stamp),
            SIGNATURE_HEADER: signature(self._secret, stamp, body),
            "User-Agent": "mien-server",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, follow_redirects=False) as http:
                answer = await http.post(self.url, content=body, headers=headers)
        except httpx.TimeoutException:
            return ProviderOutcome(False, f"no answer from {self.url} in {self.timeout:g} s", True)
        except httpx.HTTPError as exc:
            return ProviderOutcome(False, f"{self.url}: {type(exc).__name__}: {exc}", True)
        status = answer.status_code
        text = answer.text[:500]
        if 200 <= status < 300:
            result: dict[str, Any] = {"status": status}
            try:
                parsed = answer.json()
            except ValueError:
                parsed = None
            if isinstance(parsed, dict):
                result["answer"] = parsed
            return ProviderOutcome(True, f"{self.url} answered {status}", result=result)
        retry = status >= 500 or status in RETRYABLE
        return ProviderOutcome(False, f"{self.url} answered {status}: {text}".strip(), retry)
