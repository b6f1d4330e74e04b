"""Security hygiene: keys hashed and compared in constant time, no keys or personal phone numbers
in the logs, request rate limits (429 with Retry-After in the uniform body)."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from libs.common import auth, metrics
from libs.common.bus import Publisher
from libs.common.events import EventEnvelope
from libs.common.logging import configure_logging, get_logger
from libs.common.ratelimit import TokenBucketLimiter
from tests.support.echo_service import SPEC
from tests.support.stack import TOWNSHIP_A, Stack, running_stack

PHONE = "13812345678"
APPROVER_PHONE = "15987654321"


def test_keys_are_stored_as_digests_and_compared_in_constant_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_stack(tmp_path, specs=[SPEC]) as stack:
        key = stack.keys["operator"]
        record = stack.runtime.keys.repo.key_by_id(auth.key_id_of(key))
        assert record["hash"] == auth.hash_key(key) and key not in str(record)
        compared: list[tuple[str, str]] = []
        real = auth.hmac.compare_digest

        def spy(a: str, b: str) -> bool:
            compared.append((a, b))
            return real(a, b)

        monkeypatch.setattr(auth.hmac, "compare_digest", spy)
        stack.runtime.keys._cache.clear()
        assert stack.runtime.keys.verify(key) is not None
        wrong = key[:-4] + "AAAA"
        assert stack.runtime.keys.verify(wrong) is None
        assert compared == [
            (record["hash"], auth.hash_key(key)),
            (record["hash"], auth.hash_key(wrong)),
        ]


def _incident(code: str, at: datetime) -> dict[str, object]:
    now = at.isoformat()
    return {
        "category": "flood",
        "township_code": code,
        "title": "河水上涨",
        "description": f"村民报告，联系电话 {PHONE}",
        "occurred_at": now,
        "discovered_at": now,
        "location": {"address": "一号"},
        "casualties": {"deaths": 0, "injured": 1, "missing": 0, "trapped": 0},
        "affected": {"people_affected": 10},
        "reporter": {"name": "报送人", "phone": PHONE},
        "approver": {"name": "审签人", "phone": APPROVER_PHONE},
        "measures_taken": "转移群众",
        "needs": "沙袋",
        "source": f"电话 {PHONE}",
    }


def test_no_keys_or_phone_numbers_in_logs(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    """Requests, bus failures, exceptions and library logs carrying phones and keys, through
    the real logging configuration: none of them reaches the output."""
    library = io.StringIO()
    handler = logging.StreamHandler(library)
    logging.getLogger().addHandler(handler)
    configure_logging("json", "INFO")
    with running_stack(tmp_path) as stack:
        made = stack.call(
            "POST",
            "/v1/admin/keys",
            who="admin",
            json={"role": "township", "name": "值班", "township_code": TOWNSHIP_A},
        )
        new_key = made.json()["key"]
        created = stack.client.post(
            "/v1/incidents",
            json=_incident(TOWNSHIP_A, stack.clock.now()),
            headers={"Authorization": f"Bearer {new_key}"},
        )
        assert created.status_code == 201, created.text
        incident_id = created.json()["id"]
        stack.settle()
        followup = stack.call(
            "POST",
            "/v1/reports",
            who="township_a",
            json={
                "incident_id": incident_id,
                "kind": "followup",
                "casualties": {"deaths": 0, "injured": 2, "missing": 0, "trapped": 0},
                "affected": {"people_affected": 20},
                "progress": f"联系 {PHONE}",
                "measures_taken": "转移群众",
                "needs": "无",
                "reporter": {"name": "报送人", "phone": PHONE},
                "approver": {"name": "审签人", "phone": APPROVER_PHONE},
            },
        )
        assert followup.status_code == 201, followup.text
        for bad in (f"yj_{uuid.uuid4().hex[:8]}_{uuid.uuid4().hex}", new_key + "x"):
            assert (
                stack.client.get("/v1/me", headers={"Authorization": f"Bearer {bad}"}).status_code
                == 401
            )
        # A malformed event carrying phones: every consumer that validates it fails, retries and
        # dead-letters it, logging the validation error each time.
        poison = EventEnvelope(
            event_id=str(uuid.uuid4()),
            event_type="incident_reported",
            occurred_at=datetime.now(UTC),
            source="intake",
            payload={"incident_id": "poison", "reporter": {"phone": PHONE}, "grade": PHONE},
        )
        publisher = Publisher(stack.runtime.settings, "intake")
        publisher.publish([poison])
        publisher.close()
        time.sleep(0.5)
        stack.settle()
        # What the code does in places: repr of errors, nested payloads, exceptions, secrets.
        log = get_logger("hygiene")
        log.warning("bus_handler_failed", error=repr(ValueError(f"bad phone {PHONE}")))
        log.info("payload_seen", payload={"reporter": {"phone": PHONE}, "notes": [PHONE]})
        log.info("caller", authorization=f"Bearer {new_key}", note=f"key {new_key}")
        try:
            raise RuntimeError(f"cannot reach {APPROVER_PHONE} with {new_key}")
        except RuntimeError:
            log.exception("unhandled_error")
        logging.getLogger("kombu.test").warning("lost %s for %s", PHONE, new_key)
    output = capfd.readouterr().err + library.getvalue()
    assert "bus_handler_gave_up" in output and "unhandled_error" in output
    assert "lost 138****5678" in output
    secrets = [PHONE, APPROVER_PHONE, new_key, *stack.keys.values()]
    leaked = [s for s in secrets if s in output]
    assert leaked == [], f"leaked into the logs: {leaked}"


def test_token_bucket_refills_at_its_rate() -> None:
    now = [100.0]
    limiter = TokenBucketLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") == 0
    now[0] += 0.5
    assert limiter.take("a") == 0
    assert limiter.take("a") > 0
    now[0] += 100
    assert [limiter.take("a") for _ in range(3)] == [0, 0, 0]


def test_token_bucket_memory_is_bounded() -> None:
    limiter = TokenBucketLimiter(rate=1, burst=1, clock=lambda: 0.0, max_callers=100)
    for n in range(1000):
        limiter.take(f"caller-{n}")
    assert len(limiter._buckets) <= 100


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(
        tmp_path, specs=[SPEC], rate_limit_per_second=0.01, rate_limit_burst=3
    ) as stack:
        yield stack


def test_rate_limit_answers_429_with_retry_after_per_key(limited: Stack) -> None:
    before = metrics.HTTP_REJECTIONS.labels("platform", "rate_limited")._value.get()
    answers = [limited.call("GET", "/v1/me", who="operator").status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    refused = limited.call("GET", "/v1/me", who="operator")
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.json() == {
        "error": {
            "code": "rate_limited",
            "message": "请求过于频繁，请稍后再试",
            "fields": [],
        }
    }
    assert refused.headers["x-content-type-options"] == "nosniff"
    # Another key has its own bucket; probes and metrics are never limited.
    assert limited.call("GET", "/v1/me", who="leader").status_code == 200
    assert all(limited.client.get("/healthz").status_code == 200 for _ in range(10))
    assert limited.client.get("/metrics").status_code == 200
    after = metrics.HTTP_REJECTIONS.labels("platform", "rate_limited")._value.get()
    assert after - before == 2


def test_rate_limit_without_a_key_is_per_client(limited: Stack) -> None:
    answers = [limited.client.get("/v1/townships").status_code for _ in range(4)]
    assert answers == [401, 401, 401, 429]


@pytest.mark.parametrize(("rate", "burst"), [(0.01, 0), (0, 3), (0, 0)])
def test_rate_limit_zero_rate_or_burst_switches_it_off(
    tmp_path: Path, rate: float, burst: float
) -> None:
    with running_stack(
        tmp_path, specs=[SPEC], rate_limit_per_second=rate, rate_limit_burst=burst
    ) as stack:
        answers = {stack.call("GET", "/v1/me", who="operator").status_code for _ in range(6)}
    assert answers == {200}


def test_default_limits_are_generous() -> None:
    from libs.common.settings import Settings

    settings = Settings()
    assert settings.rate_limit_per_second >= 100 and settings.rate_limit_burst >= 200
