"""The duty log (值班日志) never holds a usable acknowledgement link: a village's link token is
a credential, so only its first characters reach the log, enough to correlate a line."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from libs.common.logging import configure_logging, redact_text
from services.warning.channels import LogChannel, RetryPolicy, _Options
from tests.warning.conftest import TOWNSHIP_A, county_with_channels

ACK_LINK = re.compile(r"/v1/warnings/ack/([A-Za-z0-9_\-]+)")
TOKEN = "Zq3xJ9-kLmN0pQrStUvWxYz_12345678"


def test_a_link_token_is_masked_but_its_start_is_kept() -> None:
    text = f"请点击 https://yingji.example.gov.cn/v1/warnings/ack/{TOKEN} 确认"
    masked = redact_text(text)
    assert TOKEN not in masked
    assert f"/v1/warnings/ack/{TOKEN[:6]}***" in masked


def test_the_log_channel_writes_no_link_token(
    capfd: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("json", "INFO")
    policy = RetryPolicy(1, 1.0, 0.0, 1.0, 0.0)
    channel = LogChannel(_Options(type="log", name="值班日志"), policy)
    link = f"https://yingji.example.gov.cn/v1/warnings/ack/{TOKEN}"
    channel.send({"warning_id": "w1", "text": f"暴雨黄色预警，收到请点 {link}"}, "d1")
    output = capfd.readouterr().err
    assert "warning_disseminated" in output
    assert TOKEN not in output and f"/v1/warnings/ack/{TOKEN[:6]}***" in output


def test_village_deliveries_over_the_duty_log_leave_no_usable_link(
    make_stack: Callable[..., Any], capfd: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    configure_logging("json", "INFO")
    county = county_with_channels([{"type": "log", "name": "值班日志", "carries": ["sms"]}])
    with make_stack(county=county) as stack:
        stack.issue(level=3, areas=[TOWNSHIP_A])
        stack.service.run_deliveries()
    tokens = ACK_LINK.findall(capfd.readouterr().err)
    assert tokens, "the villages' messages went to the duty log"
    assert {len(token) for token in tokens} == {6}
