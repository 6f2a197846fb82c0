"""The unwind schedule: dwell times proportional to floor + entropy (or surprisal)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import coilvis
from coilvis.errors import CoilvisValueError
from coilvis.views.schedule import default_duration_s, record_schedule, unwind_schedule

pace_values = arrays(np.float64, st.integers(1, 200), elements=st.floats(0, 16, allow_nan=False))


@given(x=pace_values, floor=st.floats(0.01, 4), total=st.floats(0.5, 500))
def test_dwell_is_proportional_to_floor_plus_value(x, floor, total):
    s = unwind_schedule(x, floor_bits=floor, duration_s=total)
    np.testing.assert_allclose(s.dwell_s.sum(), total, rtol=1e-9)
    np.testing.assert_allclose(s.dwell_s / s.dwell_s[0], (floor + x) / (floor + x[0]), rtol=1e-9)
    assert np.all(s.dwell_s > 0)
    np.testing.assert_allclose(s.start_s[1:], np.cumsum(s.dwell_s)[:-1], rtol=1e-9, atol=1e-12)


@given(x=pace_values, t=st.floats(0, 1))
def test_position_at_is_monotone_and_inverts_start(x, t):
    s = unwind_schedule(x, duration_s=10.0)
    assert s.position_at(t * 10.0) <= s.position_at(min(10.0, t * 10.0 + 0.01)) + 1e-12
    for i in range(0, x.shape[0], max(1, x.shape[0] // 7)):
        assert s.position_at(float(s.start_s[i])) == pytest.approx(i, abs=1e-6)


def test_entropy_pace_on_chosen_distributions():
    # position 0: certain (0 bits); position 1: uniform over 16 tokens (4 bits)
    logits = np.full((2, 16), -1e4, dtype=np.float32)
    logits[0, 3] = 0.0
    logits[1, :] = 0.0
    rec = coilvis.from_logits(logits, tokens=[3, 5])
    s = record_schedule(rec, floor_bits=0.5, duration_s=9.0)
    np.testing.assert_allclose(s.dwell_s, [9.0 * 0.5 / 5.0, 9.0 * 4.5 / 5.0], rtol=1e-5)
    sur = record_schedule(rec, pace="surprisal", floor_bits=0.5, duration_s=9.0)
    # position 0 predicts token 5 with p ~ 0: surprisal is huge, so it dominates
    assert sur.dwell_s[0] > sur.dwell_s[1]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"floor_bits": 0.0}, "floor_bits"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": "5"}, "duration_s"),
    ],
    ids=["zero-floor", "negative-duration", "string-duration"],
)
def test_bad_options_name_the_argument(kwargs, match):
    with pytest.raises((CoilvisValueError, TypeError), match=match):
        unwind_schedule(np.ones(3), **kwargs)


def test_bad_pace_and_values():
    rec = coilvis.from_logits(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(CoilvisValueError, match="pace"):
        record_schedule(rec, pace="speed")
    with pytest.raises(CoilvisValueError, match="x_bits"):
        unwind_schedule(np.array([1.0, np.nan]))


def test_default_duration_bounds():
    assert default_duration_s(1) == 4.0
    assert default_duration_s(100) == 25.0
    assert default_duration_s(100_000) == 180.0


def test_position_at_never_passes_the_end_just_before_it():
    # found by hypothesis: the cumulative sum of the dwell times rounds past the total,
    # so a time just below the end gave a position beyond the last one
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 16, int(rng.integers(1, 200)))
    s = unwind_schedule(x, duration_s=10.0)
    just_before = np.nextafter(10.0, 0.0)
    assert s.position_at(just_before) <= s.position_at(10.0) == float(x.shape[0])


@given(x=pace_values, total=st.floats(0.5, 500))
def test_position_at_is_monotone_at_every_boundary(x, total):
    s = unwind_schedule(x, duration_s=total)
    edges = np.concatenate([s.start_s, [s.duration_s]])
    times = np.sort(np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf)]))
    positions = [s.position_at(float(t)) for t in times]
    assert all(a <= b for a, b in zip(positions, positions[1:]))
    assert positions[-1] == float(x.shape[0])
