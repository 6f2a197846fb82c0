"""The tie-tolerant comparisons accept near-ties and still catch wrong ranks and orders."""

from __future__ import annotations

import numpy as np
import pytest

from tests.ties import assert_ranks_tie_equal, assert_topk_ids_agree, assert_topk_tie_equal

ROW = np.array([[3.0, 1.0, 3.00000001, -2.0, 1.0]])


@pytest.mark.parametrize(
    "rank, target, ok",
    [
        (1, 0, True),  # tied with token 2 for the top
        (2, 0, True),
        (3, 1, True),  # tied with token 4
        (4, 1, True),
        (2, 1, False),  # rank 2 holds a 3.0, token 1 is 1.0
        (5, 3, True),
        (4, 3, False),
        (0, 0, False),  # ranks start at 1
        (-1, -1, True),  # no next token
        (1, -1, False),
    ],
)
def test_ranks(rank, target, ok):
    if ok:
        assert_ranks_tie_equal([rank], ROW, [target])
    else:
        with pytest.raises(AssertionError):
            assert_ranks_tie_equal([rank], ROW, [target])


@pytest.mark.parametrize(
    "ids, ok",
    [([0, 2, 1], True), ([2, 0, 4], True), ([0, 1, 2], False), ([0, 0, 1], False), ([3, 0, 2], False)],
)
def test_topk(ids, ok):
    if ok:
        assert_topk_tie_equal(np.array([ids]), ROW)
    else:
        with pytest.raises(AssertionError):
            assert_topk_tie_equal(np.array([ids]), ROW)


def test_topk_ids_agree_up_to_near_ties():
    values = np.array([[5.0, 4.0, 4.00000001, 1.0, 0.5]])
    assert_topk_ids_agree([[7, 3, 9, 2, 8]], [[7, 9, 3, 2, 6]], values)  # swap of the tie; k-th differs
    with pytest.raises(AssertionError):
        assert_topk_ids_agree([[7, 3, 9, 2, 8]], [[7, 3, 9, 4, 8]], values)
