"""Shared fixtures: an in-process stack, the brokers for bus tests, and the CI rule that nothing
skips quietly.

Brokers: tests that only publish and consume use the shared broker at `YINGJI_TEST_AMQP_URL`
(default `amqp://guest:guest@127.0.0.1:5672/`); tests that stop, kill or cut a broker use
`own_rabbitmq`, a node of the session's own (tests/support/rabbitmq.py). Either missing fails
the test, it never skips."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.ci import in_ci
from tests.support.rabbitmq import Broker, OwnNode, own_node
from tests.support.stack import Stack, running_stack

RABBIT_URL = Broker.shared().url


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    """All four services in-process on a manual clock."""
    with running_stack(tmp_path) as running:
        yield running


def broker_reachable() -> bool:
    """True when something listens on the shared test broker's port (`YINGJI_TEST_AMQP_URL`)."""
    return Broker.shared().reachable()


def shared_broker() -> Broker:
    """The shared test broker; missing it fails the test (in CI and locally), it never skips."""
    broker = Broker.shared()
    if not broker.reachable():
        host, port = broker.address
        pytest.fail(
            f"RabbitMQ is not reachable on {host}:{port} (YINGJI_TEST_AMQP_URL; "
            "start the local one with scripts/ensure-rabbitmq)"
        )
    return broker


@pytest.fixture
def amqp_url() -> str:
    """The shared broker's URL, for tests that only publish and consume."""
    return shared_broker().url


@pytest.fixture(scope="session")
def own_rabbitmq() -> Iterator[OwnNode]:
    """A RabbitMQ node of the session's own, for tests that stop or cut the broker. One per
    session: a node takes 5-20 s to start on two cores. The tests using it must leave its
    application running (`OwnNode.restored`)."""
    with own_node() as node:
        yield node


# Skips that CI=true turned into failures, for the summary line.
FAILED_SKIPS: list[str] = []


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI=true a skipped test is reported as failed, with the reason it gave."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if in_ci() and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = _skip_reason(report)
        FAILED_SKIPS.append(reason)
        report.longrepr = f"skipped under CI=true, which must run every test: {reason}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line: how many tests skipped and why (0 under CI=true, where a skip fails)."""
    skipped = terminalreporter.stats.get("skipped", [])
    reasons: dict[str, int] = {}
    for report in skipped:
        reason = _skip_reason(report)
        reasons[reason] = reasons.get(reason, 0) + 1
    detail = "; ".join(f"{n} × {reason}" for reason, n in sorted(reasons.items()))
    mode = "CI=true: skips fail" if in_ci() else "locally: skips allowed"
    line = f"yingji: {len(skipped)} skipped ({mode})" + (f": {detail}" if detail else "")
    if FAILED_SKIPS:
        line += f"; {len(FAILED_SKIPS)} tried to skip and failed instead"
    deselected = len(terminalreporter.stats.get("deselected", []))
    if deselected:
        line += f"; {deselected} deselected by -m/-k/--deselect on the command line"
    terminalreporter.write_line(line)
