"""When the firmware's sync client starts its cycles: every interval less up to a tenth, drawn
afresh each time, so that tills an outage or a busy server brought into step drift apart
instead of syncing together for the rest of the day, and never later than the interval (a
lost card is refused within one). (firmware/sync.py on CPython.)"""

from __future__ import annotations

from firmware import sync


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000

    def now(self) -> int:
        return self.t


def _cycle_starts(interval: int, seconds: int) -> list[int]:
    clock = Clock()
    s = sync.Sync(1, b"k" * 32, "http://127.0.0.1:9/", None, None, None, None, clock)
    starts: list[int] = []

    def step() -> None:  # a cycle that ends at once, without the network
        starts.append(clock.t)
        s._step = sync.STEP_DONE

    s.step = step  # type: ignore[method-assign]
    for _ in range(seconds):
        s.tick(interval)
        clock.t += 1
    return starts


def test_cycles_start_every_interval_less_up_to_a_tenth() -> None:
    starts = _cycle_starts(10, 2000)
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert starts[0] == 1_800_000_000  # the first cycle at once
    assert set(gaps) <= {9, 10} and len(gaps) > 190
    assert len(set(gaps)) == 2  # drawn afresh: 200 equal gaps would mean no jitter at all


def test_a_short_interval_is_kept_short() -> None:
    starts = _cycle_starts(2, 200)
    assert {b - a for a, b in zip(starts, starts[1:])} == {2}
