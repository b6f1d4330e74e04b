"""Failed authentications are throttled without ever locking out a valid key.

The throttle counts failures only, per client address (as forwarded by a trusted proxy) and per
presented key id; a valid key is checked first and always passes. Forwarded headers count only
when the peer is in ``YINGJI_FORWARDED_ALLOW_IPS``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import ValidationError

from libs.common.auth import FailureThrottle, key_id_of
from libs.common.settings import Settings
from tests.support.echo_service import SPEC
from tests.support.stack import Stack, running_stack

pytestmark = pytest.mark.e2e

LIMIT = 3
PROXY = "10.20.0.5"


@pytest.fixture
def echo(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        tmp_path, specs=[SPEC], auth_failure_limit=LIMIT, forwarded_allow_ips="10.20.0.0/24"
    ) as stack:
        yield stack


def client_at(stack: Stack, address: str) -> TestClient:
    """A client whose connections come from ``address``."""
    return TestClient(stack.client.app, raise_server_exceptions=False, client=(address, 40000))


def me(client: TestClient, key: str, forwarded_for: str | None = None) -> int:
    """The status of GET /v1/me with ``key``."""
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return client.get("/v1/me", headers=headers).status_code


def throttled(scope: str) -> float:
    """The current value of the throttle counter for ``scope``."""
    return REGISTRY.get_sample_value("yingji_auth_throttled_total", {"scope": scope}) or 0.0


def test_valid_keys_pass_after_many_failures_from_the_same_address(echo: Stack) -> None:
    office = client_at(echo, "192.0.2.10")
    answers = [me(office, "wrong-token") for _ in range(LIMIT * 7)]
    assert answers[:LIMIT] == [401] * LIMIT
    assert set(answers[LIMIT:]) == {429}
    for who in ("admin", "leader", "operator", "township_a"):
        assert me(office, echo.keys[who]) == 200, who
    assert me(office, "wrong-token") == 429


def test_a_throttled_answer_says_when_to_retry(echo: Stack) -> None:
    office = client_at(echo, "192.0.2.11")
    for _ in range(LIMIT):
        me(office, "wrong-token")
    answer = office.get("/v1/me", headers={"Authorization": "Bearer wrong-token"})
    assert answer.status_code == 429
    assert answer.json()["error"]["code"] == "throttled"
    assert 1 <= int(answer.headers["retry-after"]) <= 60


def test_missing_keys_are_not_counted(echo: Stack) -> None:
    office = client_at(echo, "192.0.2.12")
    for _ in range(LIMIT * 3):
        assert office.get("/v1/me").status_code == 401
    assert me(office, "yj_first_guess") == 401


def test_failures_count_per_forwarded_client_behind_the_trusted_proxy(echo: Stack) -> None:
    proxy = client_at(echo, PROXY)
    for n in range(LIMIT):
        assert me(proxy, f"yj_guess{n}_x", forwarded_for="203.0.113.5") == 401
    assert me(proxy, "yj_guessmore_x", forwarded_for="203.0.113.5") == 429
    # Another client behind the same proxy is not held up by the first one's failures ...
    assert me(proxy, "yj_other_x", forwarded_for="203.0.113.6") == 401
    # ... and the proxy's own chain of forwarders is honoured: the last untrusted hop counts.
    assert me(proxy, "yj_chain_x", forwarded_for="203.0.113.5, 10.20.0.9") == 429
    assert me(proxy, echo.keys["operator"], forwarded_for="203.0.113.5") == 200


def test_forwarded_headers_from_an_untrusted_peer_are_ignored(echo: Stack) -> None:
    stranger = client_at(echo, "198.51.100.7")
    for n in range(LIMIT):
        # A new made-up address every time: it must not spread the failures over many budgets.
        assert me(stranger, f"yj_spray{n}_x", forwarded_for=f"203.0.113.{100 + n}") == 401
    assert me(stranger, "yj_spraymore_x", forwarded_for="203.0.113.200") == 429
    # The stranger cannot blame someone else either: that address is still in good standing.
    assert me(client_at(echo, PROXY), "yj_fresh_x", forwarded_for="203.0.113.100") == 401


def test_guessing_one_key_is_throttled_per_key_id_across_addresses(echo: Stack) -> None:
    target = echo.keys["leader"]
    key_id = key_id_of(target)
    before = throttled("key_id")
    for n in range(LIMIT):
        assert me(client_at(echo, f"192.0.2.{50 + n}"), f"yj_{key_id}_guess{n}") == 401
    fresh_address = client_at(echo, "192.0.2.99")
    assert me(fresh_address, f"yj_{key_id}_guessmore") == 429
    assert throttled("key_id") == before + 1
    # Other key ids from that address are not affected, and the real key still works.
    assert me(fresh_address, "yj_someoneelse_guess") == 401
    assert me(fresh_address, target) == 200


def test_throttle_counters_exist_from_the_start() -> None:
    for scope in ("address", "key_id"):
        sample = REGISTRY.get_sample_value("yingji_auth_throttled_total", {"scope": scope})
        assert sample is not None


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.internal", "10.0.0.0/33", "10.0.0.1;*"])
def test_trusted_proxies_must_be_addresses_or_networks(value: str) -> None:
    with pytest.raises(ValidationError):
        Settings(forwarded_allow_ips=value)


def test_memory_stays_bounded_when_names_are_sprayed() -> None:
    throttle = FailureThrottle(limit=2, window_seconds=600)
    for n in range(FailureThrottle.MAX_NAMES * 2):
        # Someone sprays made-up key ids from many addresses.
        throttle.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}", f"spray{n}")
    sizes = [len(window._failures) for window in throttle._scopes.values()]
    assert max(sizes) <= FailureThrottle.MAX_NAMES
