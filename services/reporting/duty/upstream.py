"""The HTTP client that hands a document to the city's platform and reads its receipt."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from services.reporting.duty.config import DutySettings


class DeliveryError(Exception):
    """The city gave no receipt; the message (Chinese) says why."""


@dataclass(frozen=True)
class Receipt:
    """The city's acknowledgement of one message."""

    receipt_id: str
    duplicate: bool = False


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "上级平台响应超时"
    if isinstance(exc, httpx.ConnectError):
        return "无法连接上级平台"
    return f"网络错误：{type(exc).__name__}"


class UpstreamClient:
    """POSTs JSON to the configured URL with the shared token and the message id."""

    def __init__(self, settings: DutySettings) -> None:
        self.settings = settings

    def send(self, message_id: str, document: Mapping[str, Any]) -> Receipt:
        """Deliver one document; a 2xx answer with a receipt id is the only success."""
        headers = {
            "Authorization": f"Bearer {self.settings.upstream_token}",
            "X-Message-Id": message_id,
        }
        try:
            response = httpx.post(
                self.settings.upstream_url,
                json=dict(document),
                headers=headers,
                timeout=self.settings.upstream_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(_reason(exc)) from exc
        if not 200 <= response.status_code < 300:
            raise DeliveryError(f"上级平台返回 HTTP {response.status_code}")
        try:
            body = response.json()
        except ValueError as exc:
            raise DeliveryError("上级平台回执不是 JSON") from exc
        receipt = body.get("receipt_id") if isinstance(body, dict) else None
        if not isinstance(receipt, str) or not receipt:
            raise DeliveryError("上级平台回执缺少 receipt_id")
        return Receipt(receipt, bool(body.get("duplicate")))
