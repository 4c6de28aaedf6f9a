"""harness.waiting.wait_for: the one way tests and benchmarks wait for an event."""

from __future__ import annotations

import pytest

from harness.waiting import WaitAborted, wait_for


class Answers:
    """A condition answering from a script, counting how often it was asked."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.asked = 0

    def __call__(self):
        self.asked += 1
        return self.answers.pop(0)


def test_returns_the_first_truthy_answer_polling_at_the_interval():
    naps: list[float] = []
    condition = Answers(None, [], {"state": "success"})
    assert wait_for(condition, timeout=60, what="a run", interval=0.5, sleep=naps.append) == {"state": "success"}
    assert condition.asked == 3 and naps == [0.5, 0.5]


def test_timeout_names_what_was_awaited_and_adds_the_diagnostics():
    with pytest.raises(TimeoutError, match=r"waiting for the api-server\nlast log line") as caught:
        wait_for(lambda: False, timeout=0, what="the api-server", on_timeout=lambda: "last log line", sleep=print)
    assert "timed out after 0s" in str(caught.value)


def test_abort_stops_at_once_with_its_reason():
    condition = Answers(False, False, True)
    with pytest.raises(WaitAborted, match="scheduler exited with 1") as caught:
        wait_for(condition, timeout=60, what="the scheduler", abort=lambda: "scheduler exited with 1", sleep=print)
    assert condition.asked == 1 and caught.value.what == "the scheduler"


def test_an_error_in_the_condition_is_not_retried():
    def broken():
        raise KeyError("state")

    with pytest.raises(KeyError):
        wait_for(broken, timeout=60, what="a run", sleep=pytest.fail)
