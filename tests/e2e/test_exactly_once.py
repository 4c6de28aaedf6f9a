"""Exactly once under faults on a real Airflow, at CI size: 45 deliveries over three accounts each,
about 20 % of platform requests failing (lost answers, 5xx, answers after the client's timeout,
429s), one ``kill -9`` of a send_slot task's process while it is sending, then a crash (``kill -9``)
and restart of the scheduler while deliveries are sending.

Every post must exist exactly once in the sandbox and every delivery must end published (with a
remote id the sandbox has) or failed with a reason. The full-size run (300 deliveries, two kills, a scheduler restart)
is ``python bench/exactly_once.py``; its figures are in the report.
"""

from __future__ import annotations

import pytest

from bench.exactly_once import fault_run

pytestmark = [pytest.mark.airflow, pytest.mark.slow]


def test_no_post_twice_and_none_lost_under_faults_and_a_killed_worker(tmp_path):
    report = fault_run(tmp_path, deliveries=45, kills=1, scheduler_restarts=1, seed=3, stale_after=90)

    assert report["deliveries planned"] == 45
    assert report["duplicate posts"] == 0, report
    assert report["orphan posts (no delivery)"] == 0, report
    assert report["published without its post"] == 0, report
    assert report["lost"] == 0, report
    assert len(report["kills"]) == 1 and len(report["scheduler restarts"]) == 1, report
    assert report["deliveries sending at a kill or restart"] >= 1, report
    assert set(report["their final statuses"]) <= {"published", "failed"}, report
