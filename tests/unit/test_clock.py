"""Hybrid logical clock: order, encoding, merging, and the clamp on clocks far ahead."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from core.clock import DAY_MS, Hlc, HlcClock

T0 = int(datetime(2026, 11, 30, 2, 0, tzinfo=UTC).timestamp() * 1000)
YEAR_MS = 365 * DAY_MS


class FakeTime:
    """A wall clock the test moves by hand."""

    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_order_is_wall_then_logical_then_node() -> None:
    stamps = [
        Hlc(T0, 0, "b"),
        Hlc(T0, 1, "a"),
        Hlc(T0 + 1, 0, "a"),
        Hlc(T0, 0, "a"),
    ]
    assert sorted(stamps) == [
        Hlc(T0, 0, "a"),
        Hlc(T0, 0, "b"),
        Hlc(T0, 1, "a"),
        Hlc(T0 + 1, 0, "a"),
    ]


def test_encoding_round_trips_and_sorts_like_the_stamps() -> None:
    rng = random.Random(7)
    nodes = ["500109102001:k7f3a9", "500109102000:t0t0t0", "500109102002:zz99"]
    stamps = [
        Hlc(rng.randrange(0, 2**48), rng.randrange(0, 2**16), rng.choice(nodes)) for _ in range(500)
    ]
    stamps += [Hlc(T0, 0, n) for n in nodes] + [Hlc(0, 0, "a"), Hlc(2**48 - 1, 2**16 - 1, "z")]
    for stamp in stamps:
        assert Hlc.parse(stamp.encode()) == stamp
    assert sorted(s.encode() for s in stamps) == [s.encode() for s in sorted(stamps)]
    assert len(Hlc(T0, 3, "n1").encode()) == 16 + 1 + 2
    assert str(Hlc(T0, 3, "n1")) == Hlc(T0, 3, "n1").encode()


@pytest.mark.parametrize(
    "text", ["", "x", "019ad2a1c4000000", "019AD2A1C4000000-n", "019ad2a1c400000-n", "0-0-n"]
)
def test_parse_rejects_what_is_not_a_stamp(text: str) -> None:
    with pytest.raises(ValueError):
        Hlc.parse(text)


def test_stamp_fields_are_checked() -> None:
    with pytest.raises(ValueError):
        Hlc(-1, 0, "n")
    with pytest.raises(ValueError):
        Hlc(0, 2**16, "n")
    with pytest.raises(ValueError):
        Hlc(0, 0, "has blank")
    with pytest.raises(ValueError):
        HlcClock("", FakeTime(T0))


def test_successor_borrows_a_millisecond_on_logical_overflow() -> None:
    assert Hlc(T0, 5, "a").successor("b") == Hlc(T0, 6, "b")
    top = Hlc(T0, 2**16 - 1, "a")
    assert top.successor("b") == Hlc(T0 + 1, 0, "b")
    assert top.successor("b") > top


def test_tick_follows_wall_time_and_never_goes_back() -> None:
    now = FakeTime(T0)
    clock = HlcClock("n", now)
    first = clock.tick()
    assert first == Hlc(T0, 0, "n")
    assert clock.tick() == Hlc(T0, 1, "n")  # same millisecond
    now.ms = T0 - 60_000  # the wall clock is set back a minute
    back = clock.tick()
    assert back == Hlc(T0, 2, "n")
    now.ms = T0 + 5
    assert clock.tick() == Hlc(T0 + 5, 0, "n")
    assert clock.last == Hlc(T0 + 5, 0, "n")


def test_tick_resumes_from_a_saved_stamp() -> None:
    clock = HlcClock("n", FakeTime(T0 - 1000), last=Hlc(T0, 9, "n"))
    assert clock.tick() == Hlc(T0, 10, "n")


def test_receive_moves_past_a_remote_stamp() -> None:
    now = FakeTime(T0)
    township = HlcClock("township", now)
    township.tick()
    merge = township.receive(Hlc(T0 + 5000, 3, "kiosk"))
    assert merge.stamp == Hlc(T0 + 5000, 4, "township")
    assert merge.skew_ms == 5000
    assert not merge.clamped
    assert township.tick() > Hlc(T0 + 5000, 3, "kiosk")


def test_receive_from_a_slow_clock_keeps_local_time() -> None:
    now = FakeTime(T0)
    clock = HlcClock("township", now)
    merge = clock.receive(Hlc(T0 - YEAR_MS, 0, "kiosk"))
    assert merge.stamp == Hlc(T0, 0, "township")  # first stamp of this clock, at local time
    assert merge.skew_ms == -YEAR_MS
    assert not merge.clamped


def test_receive_equal_walls_takes_the_larger_logical() -> None:
    clock = HlcClock("a", FakeTime(T0))
    clock.tick()  # (T0, 0)
    assert clock.receive(Hlc(T0, 7, "b")).stamp == Hlc(T0, 8, "a")


def test_a_remote_just_under_a_day_ahead_is_adopted() -> None:
    now = FakeTime(T0)
    clock = HlcClock("township", now)
    ahead = Hlc(T0 + DAY_MS, 0, "kiosk")
    merge = clock.receive(ahead)
    assert not merge.clamped
    assert merge.stamp > ahead


def test_kiosk_clock_a_year_fast_is_clamped_and_flagged() -> None:
    """One wrong kiosk must not drag the township's clock (and the network) a year forward."""
    kiosk_time = FakeTime(T0 + YEAR_MS)
    kiosk = HlcClock("500109102001:fast01", kiosk_time)
    township_time = FakeTime(T0)
    township = HlcClock("500109102000:town01", township_time)

    submitted = kiosk.tick()
    merge = township.receive(submitted)
    assert merge.clamped
    assert merge.skew_ms == YEAR_MS
    assert merge.stamp.wall_ms <= T0 + DAY_MS  # adopted only up to local time + 1 day
    # The township's own later events, on other cases, stay near real time.
    township_time.ms += 60_000
    other_case = township.tick()
    assert other_case.wall_ms <= T0 + DAY_MS + 1
    # An event on the fast kiosk's case still sorts after what the township saw of it…
    received = township.tick(after=submitted)
    assert received > submitted
    # …without the township's clock adopting that far-future stamp.
    assert township.last.wall_ms <= T0 + DAY_MS + 1
    assert township.tick() < submitted


def test_tick_after_within_the_bound_is_adopted() -> None:
    now = FakeTime(T0)
    clock = HlcClock("a", now)
    seen = Hlc(T0 + 10_000, 2, "b")
    stamp = clock.tick(after=seen)
    assert stamp == Hlc(T0 + 10_000, 3, "a")
    assert clock.last == stamp
    assert clock.tick() > stamp


def test_tick_after_an_older_stamp_changes_nothing() -> None:
    clock = HlcClock("a", FakeTime(T0))
    assert clock.tick(after=Hlc(T0 - 50, 0, "b")) == Hlc(T0, 0, "a")


def test_clocks_exchanging_stamps_keep_causal_order() -> None:
    """Random skews (a kiosk a year fast among them) and messages: a reply sorts after its cause."""
    rng = random.Random(2026)
    skews = [0, 3_000, -7_200_000, YEAR_MS, -YEAR_MS]
    times = [FakeTime(T0 + s) for s in skews]
    clocks = [HlcClock(f"n{i}", t) for i, t in enumerate(times)]
    latest = clocks[0].tick()
    for _ in range(2000):
        i = rng.randrange(len(clocks))
        for t in times:
            t.ms += rng.randrange(0, 5000)
        if rng.random() < 0.5:
            clocks[i].receive(latest)
        stamp = clocks[i].tick(after=latest)
        assert stamp > latest
        latest = stamp
    # The year-fast node never dragged the others beyond a day ahead of their own wall time.
    for i, clock in enumerate(clocks):
        if skews[i] != YEAR_MS:
            assert clock.last.wall_ms <= times[i].ms + DAY_MS + 1


def test_max_ahead_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        HlcClock("a", FakeTime(T0), max_ahead_ms=-1)
