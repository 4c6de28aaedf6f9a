"""The client-side posting budget: a window of N writes, settled at the time a write arrives."""

from __future__ import annotations

from koho.platforms.base import WriteBudget


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_budget_allows_n_writes_per_window_then_says_how_long_to_wait():
    clock = Clock()
    budget = WriteBudget(2, 10.0, clock=clock)
    assert budget.delay() == 0 and budget.delay() == 0
    clock.now = 103.0
    assert budget.delay() == 7.0  # the first write leaves the window at 110
    clock.now = 110.0
    assert budget.delay() == 0


def test_settle_moves_the_window_to_when_the_write_reached_the_platform():
    clock = Clock()
    budget = WriteBudget(1, 10.0, clock=clock)
    assert budget.delay() == 0  # allowed at 100
    clock.now = 100.4  # ...but the request arrived (and was counted) at 100.4
    budget.settle()
    clock.now = 110.1
    assert abs(budget.delay() - 0.3) < 1e-9  # the window reopens at 110.4, not at 110.0
