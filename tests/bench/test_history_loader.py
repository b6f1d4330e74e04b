"""The fast history loader of the benchmarks writes what the public API path writes."""

from __future__ import annotations

import pytest

from bench.history_check import compare


# Four platform start-ups (two loadings, two servings), each catching a year of timers up.
@pytest.mark.timeout(600)
def test_fast_loader_answers_as_the_api_path_does() -> None:
    # 40 incidents of history (each reported, then ended by its 终报) and 10 open ones on the
    # measured day, loaded once through the HTTP routes of a running platform and once through
    # the use cases and handlers in-process: every GET compared answers the same.
    assert compare(40, sample_size=50, day_incidents=10) == []
