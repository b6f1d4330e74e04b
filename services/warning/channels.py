"""Dissemination channels as plug-ins (渠道): configured per county in ``warning_channels``.

A channel type is a class registered in ``CHANNEL_TYPES``; the county file names the type, a
display name and the type's own fields. ``log`` writes the message to the duty log; ``webhook``
POSTs it as JSON to an SMS / broadcast / display-screen gateway and counts any 2xx as delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError

from libs.common.county import Channel as ChannelConfig
from services.warning.rules import DeliveryRules


class ChannelError(Exception):
    """A delivery attempt failed; the worker retries with back-off."""


class ChannelConfigError(ValueError):
    """The county file configures a channel this service cannot run."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a channel retries."""

    max_attempts: int
    timeout_seconds: float
    backoff_base_seconds: float
    backoff_factor: float
    backoff_max_seconds: float


class _Options(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: str
    name: str = Field(min_length=1)
    max_attempts: int | None = Field(default=None, ge=1, le=50)
    timeout_seconds: float | None = Field(default=None, gt=0, le=120)
    backoff_base_seconds: float | None = Field(default=None, ge=0)
    backoff_factor: float | None = Field(default=None, ge=1)
    backoff_max_seconds: float | None = Field(default=None, ge=0)
    # Recipients' channel kinds this channel carries (an SMS gateway: [sms]); a village's
    # officer and an enterprise's people are reached over the channels that carry their kind.
    carries: list[Literal["sms", "phone", "webhook"]] = []


class WarningChannel:
    """Base of every channel plug-in."""

    type_name: ClassVar[str] = ""
    options_model: ClassVar[type[_Options]] = _Options

    def __init__(self, options: _Options, policy: RetryPolicy) -> None:
        self.name = options.name
        self.options = options
        self.policy = policy
        self.carries = tuple(options.carries)

    def send(self, message: Mapping[str, Any], delivery_id: str) -> None:
        """Deliver ``message``; raise ChannelError when it did not get through."""
        raise NotImplementedError


class LogChannel(WarningChannel):
    """Writes the warning to the duty log (值班日志); never fails."""

    type_name = "log"

    def __init__(self, options: _Options, policy: RetryPolicy) -> None:
        super().__init__(options, policy)
        self.log = structlog.get_logger().bind(service="warning", channel=self.name)

    def send(self, message: Mapping[str, Any], delivery_id: str) -> None:
        """Log one line per township and version."""
        self.log.info(
            "warning_disseminated",
            delivery_id=delivery_id,
            correlation_id=message.get("warning_id"),
            township_code=message.get("township_code"),
            msg_type=message.get("msg_type"),
            level=message.get("level"),
            text=message.get("text"),
        )


class _WebhookOptions(_Options):
    url: HttpUrl
    headers: dict[str, str] = {}


class WebhookChannel(WarningChannel):
    """POSTs the message as JSON; the delivery id (percent-encoded) goes in ``Idempotency-Key``
    so a gateway can drop our retries of a message it already took."""

    type_name = "webhook"
    options_model = _WebhookOptions

    def __init__(
        self,
        options: _Options,
        policy: RetryPolicy,
        client_factory: Callable[[float], httpx.Client] | None = None,
    ) -> None:
        super().__init__(options, policy)
        assert isinstance(options, _WebhookOptions)
        self.url = str(options.url)
        self.headers = dict(options.headers)
        self._client_factory = client_factory or (lambda timeout: httpx.Client(timeout=timeout))

    def send(self, message: Mapping[str, Any], delivery_id: str) -> None:
        """One POST; non-2xx, timeouts and connection errors are failures."""
        # Header values must be ASCII; channel names are often Chinese, so percent-encode.
        headers = {**self.headers, "Idempotency-Key": quote(delivery_id, safe=":_-.")}
        try:
            with self._client_factory(self.policy.timeout_seconds) as client:
                response = client.post(self.url, json=dict(message), headers=headers)
        except httpx.HTTPError as exc:
            raise ChannelError(f"{type(exc).__name__}: {exc}"[:300]) from exc
        if not 200 <= response.status_code < 300:
            raise ChannelError(f"HTTP {response.status_code}: {response.text[:200]}")


CHANNEL_TYPES: dict[str, type[WarningChannel]] = {
    LogChannel.type_name: LogChannel,
    WebhookChannel.type_name: WebhookChannel,
}


def build_channels(
    configs: Sequence[ChannelConfig], defaults: DeliveryRules
) -> dict[str, WarningChannel]:
    """The county's channels by name; a bad or unknown channel fails the service's start."""
    channels: dict[str, WarningChannel] = {}
    for index, config in enumerate(configs):
        raw = config.model_dump()
        kind = CHANNEL_TYPES.get(config.type)
        if kind is None:
            known = ", ".join(sorted(CHANNEL_TYPES))
            raise ChannelConfigError(
                f"warning_channels.{index}.type: unknown channel type {config.type!r} ({known})"
            )
        try:
            options = kind.options_model.model_validate(raw)
        except ValidationError as exc:
            raise ChannelConfigError(f"warning_channels.{index}: {exc}") from exc
        if options.name in channels:
            raise ChannelConfigError(f"warning_channels.{index}.name: duplicate {options.name!r}")
        policy = RetryPolicy(
            max_attempts=options.max_attempts or defaults.max_attempts,
            timeout_seconds=options.timeout_seconds or defaults.timeout_seconds,
            backoff_base_seconds=(
                options.backoff_base_seconds
                if options.backoff_base_seconds is not None
                else defaults.backoff_base_seconds
            ),
            backoff_factor=options.backoff_factor or defaults.backoff_factor,
            backoff_max_seconds=(
                options.backoff_max_seconds
                if options.backoff_max_seconds is not None
                else defaults.backoff_max_seconds
            ),
        )
        channels[options.name] = kind(options, policy)
    return channels
