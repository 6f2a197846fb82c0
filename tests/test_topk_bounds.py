"""coilvis.topk_bounds: divergences of distributions known through their top-k.

Checked against textbook references (numpy, themselves checked against scipy when it is
installed) and coilvis.stats' torch implementation on full distributions,
where the top-k covers everything and the result must be exact; against the exact
divergence as an upper bound when it does not; and against a brute-force minimisation
of the same coarse-grained objective, so the closed-form search misses no minimum.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis.topk_bounds import DIVERGENCES, topk_divergence
from coilvis.errors import CoilvisTypeError, CoilvisValueError

LN2 = math.log(2.0)


def _kl(p: np.ndarray, q: np.ndarray) -> float:
    """sum p log(p / q) with 0 log 0 = 0 (numpy; checked against scipy below)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return float(terms.sum())


def exact(kind: str, p: np.ndarray, q: np.ndarray) -> float:
    """Textbook divergences of full distributions, in nats."""
    if kind == "kl":
        return _kl(p, q)
    if kind == "js":
        m = (p + q) / 2
        return 0.5 * _kl(p, m) + 0.5 * _kl(q, m)
    return float(0.5 * np.abs(p - q).sum())


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def topk(p: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    return ids, np.take_along_axis(p, ids, axis=-1)


# ------------------------------------------------------------------ exact when covered


def test_references_agree_with_scipy() -> None:
    scipy_special = pytest.importorskip("scipy.special")
    scipy_distance = pytest.importorskip("scipy.spatial.distance")
    rng = np.random.default_rng(6)
    p, q = softmax(rng.normal(0, 2, size=(2, 30)))
    assert exact("kl", p, q) == pytest.approx(float(scipy_special.rel_entr(p, q).sum()), rel=1e-12)
    assert exact("js", p, q) == pytest.approx(scipy_distance.jensenshannon(p, q) ** 2, rel=1e-9)


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_full_topk_equals_the_reference(kind: str) -> None:
    rng = np.random.default_rng(0)
    p = softmax(rng.normal(0, 2, size=(50, 17)))
    q = softmax(rng.normal(0, 2, size=(50, 17)))
    # each cell lists all 17 tokens, in a different order for p and q
    p_ids, p_probs = topk(p, 17)
    q_ids, q_probs = topk(q, 17)
    got = topk_divergence(p_ids, p_probs, q_ids, q_probs, kind=kind)
    want = np.array([exact(kind, p[i], q[i]) for i in range(50)])
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert got.shape == (50,)


def test_full_topk_equals_torch_reference() -> None:
    torch = pytest.importorskip("torch")
    from coilvis import stats

    rng = np.random.default_rng(1)
    lp, lq = rng.normal(0, 3, size=(2, 8, 11))
    p, q = softmax(lp), softmax(lq)
    ids = np.broadcast_to(np.arange(11), (8, 11))
    for kind, ref in (
        ("kl", stats.kl_divergence(torch.tensor(lp), torch.tensor(lq))),
        ("js", stats.js_divergence(torch.tensor(lp), torch.tensor(lq))),
        ("tv", stats.tv_distance(torch.tensor(lp), torch.tensor(lq))),
    ):
        np.testing.assert_allclose(topk_divergence(ids, p, ids, q, kind=kind), ref, atol=2e-6)


def test_bits_and_ranges() -> None:
    # two point masses on different tokens: JS = ln 2 (1 bit), TV = 1, KL infinite
    ids = np.array([[0, 1]])
    p = np.array([[1.0, 0.0]])
    q = np.array([[0.0, 1.0]])
    assert topk_divergence(ids, p, ids, q, kind="js", atol=0)[0] == pytest.approx(LN2)
    assert topk_divergence(ids, p, ids, q, kind="js", bits=True, atol=0)[0] == pytest.approx(1.0)
    assert topk_divergence(ids, p, ids, q, kind="tv", atol=0)[0] == pytest.approx(1.0)
    assert topk_divergence(ids, p, ids, q, kind="kl", atol=0)[0] == np.inf


def test_identical_cells_are_zero() -> None:
    rng = np.random.default_rng(2)
    p = softmax(rng.normal(0, 2, size=(20, 100)))
    ids, probs = topk(p, 5)
    for kind in DIVERGENCES:
        np.testing.assert_allclose(topk_divergence(ids, probs, ids, probs, kind=kind), 0.0, atol=1e-12)


def test_disjoint_confident_top1_is_informative() -> None:
    # p puts 0.9 on token 0, q 0.9 on token 1: any completion has q(0) <= 0.1 and
    # p(1) <= 0.1, so TV >= 0.8; merging both into one "rest" bucket would give 0.
    got = topk_divergence([[0]], [[0.9]], [[1]], [[0.9]], kind="tv")
    assert got[0] == pytest.approx(0.8)
    p = np.array([0.9, 0.05, 0.05])
    q = np.array([0.05, 0.9, 0.05])
    assert got[0] <= exact("tv", p, q) + 1e-12
    for kind in ("kl", "js"):
        bound = topk_divergence([[0]], [[0.9]], [[1]], [[0.9]], kind=kind)[0]
        assert 0.3 < bound <= exact(kind, p, q) + 1e-12


def test_symmetric_js_and_tv() -> None:
    rng = np.random.default_rng(3)
    p = softmax(rng.normal(0, 2, size=(30, 40)))
    q = softmax(rng.normal(0, 2, size=(30, 40)))
    pi, pp = topk(p, 4)
    qi, qq = topk(q, 6)
    for kind in ("js", "tv"):
        np.testing.assert_allclose(
            topk_divergence(pi, pp, qi, qq, kind=kind), topk_divergence(qi, qq, pi, pp, kind=kind), atol=1e-12
        )


def test_leading_shape_kept() -> None:
    rng = np.random.default_rng(4)
    p = softmax(rng.normal(size=(3, 4, 9)))
    ids, probs = topk(p, 3)
    assert topk_divergence(ids, probs, ids[::-1], probs[::-1], kind="js").shape == (3, 4)


# ------------------------------------------------------------------ lower bound (hypothesis)


@st.composite
def cell_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    d_vocab = draw(st.integers(2, 12))
    logits = st.lists(st.floats(-5, 5, allow_nan=False), min_size=d_vocab, max_size=d_vocab)
    p = softmax(np.array(draw(logits)))
    q = softmax(np.array(draw(logits)))
    return p, q, draw(st.integers(1, d_vocab)), draw(st.integers(1, d_vocab))


@given(cell_pairs(), st.sampled_from(DIVERGENCES), st.sampled_from([1e-6, 1e-12]))
def test_coarse_is_a_lower_bound(cells: tuple[np.ndarray, np.ndarray, int, int], kind: str, atol: float) -> None:
    p, q, k_p, k_q = cells
    p_ids, p_probs = topk(p, k_p)
    q_ids, q_probs = topk(q, k_q)
    got = float(topk_divergence(p_ids, p_probs, q_ids, q_probs, kind=kind, atol=atol)[()])
    truth = exact(kind, p, q)
    # the floor atol on leftover mass costs at most atol * (1 + ln(1 / atol))
    assert -1e-12 <= got <= truth + atol * (1 + math.log(1 / atol)) + 1e-12
    if k_p == len(p) and k_q == len(q):
        assert got == pytest.approx(truth, abs=1e-6)


@given(cell_pairs(), st.sampled_from(DIVERGENCES))
def test_bound_beats_the_merged_rest_bucket(cells: tuple[np.ndarray, np.ndarray, int, int], kind: str) -> None:
    """It is at least the plain coarse-graining {shared tokens} + {everything else}."""
    p, q, k_p, k_q = cells
    p_ids, p_probs = topk(p, k_p)
    q_ids, q_probs = topk(q, k_q)
    shared = np.intersect1d(p_ids, q_ids)
    # leftover mass floored as topk_divergence does (a rounding residue is not a zero);
    # a tiny floor keeps the slack it gives negligible
    atol = 1e-12
    merged_p = np.append(p[shared], max(1.0 - p[shared].sum(), atol))
    merged_q = np.append(q[shared], max(1.0 - q[shared].sum(), atol))
    got = float(topk_divergence(p_ids, p_probs, q_ids, q_probs, kind=kind, atol=atol)[()])
    assert got >= exact(kind, merged_p, merged_q) - 1e-7


def _objective(kind: str, p: np.ndarray, q: np.ndarray, p_ids: np.ndarray, q_ids: np.ndarray) -> float:
    """Brute force over a grid of the two unknown masses (q of p-only tokens, p of q-only tokens)."""

    def f(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if kind == "kl":
                return np.where(a > 0, np.where(b > 0, a * np.log(a / np.where(b > 0, b, 1)), np.inf), 0.0)
            if kind == "js":
                m = (a + b) / 2
                return 0.5 * (np.where(a > 0, a * np.log(a / m), 0) + np.where(b > 0, b * np.log(b / m), 0))
            return 0.5 * np.abs(a - b)

    shared = np.intersect1d(p_ids, q_ids)
    only_p = np.setdiff1d(p_ids, q_ids)
    only_q = np.setdiff1d(q_ids, p_ids)
    rest_p = max(1.0 - p[p_ids].sum(), 1e-6)
    rest_q = max(1.0 - q[q_ids].sum(), 1e-6)
    cap_u = min(len(only_p) * q[q_ids].min(), rest_q)
    cap_v = min(len(only_q) * p[p_ids].min(), rest_p)
    u = np.linspace(0, cap_u, 241)[:, None]
    v = np.linspace(0, cap_v, 241)[None, :]
    g = (
        f(p[shared], q[shared]).sum()
        + f(p[only_p].sum(), u)
        + f(v, q[only_q].sum())
        + f(np.maximum(rest_p - v, 0), np.maximum(rest_q - u, 0))
    )
    return float(g.min())


@pytest.mark.parametrize("kind", DIVERGENCES)
def test_finds_the_minimum_of_the_coarse_objective(kind: str) -> None:
    rng = np.random.default_rng(5)
    for _ in range(60):
        d_vocab = int(rng.integers(3, 10))
        p, q = rng.dirichlet(np.ones(d_vocab)), rng.dirichlet(np.ones(d_vocab))
        p_ids, _ = topk(p, int(rng.integers(1, d_vocab)))
        q_ids, _ = topk(q, int(rng.integers(1, d_vocab)))
        got = float(topk_divergence(p_ids, p[p_ids], q_ids, q[q_ids], kind=kind)[()])
        assert got <= _objective(kind, p, q, p_ids, q_ids) + 1e-9


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kind": "hellinger"}, CoilvisValueError, "kind"),
        ({"atol": 2.0}, CoilvisValueError, "atol"),
        ({"p_ids": np.array([[0.0, 1.0]])}, CoilvisTypeError, "p_ids"),
        ({"q_probs": np.array([[0.5]])}, CoilvisValueError, "q_probs"),
        ({"p_probs": np.array([[0.9, 0.9]])}, CoilvisValueError, "more than 1"),
        ({"p_probs": np.array([[-0.1, 0.5]])}, CoilvisValueError, "p_probs"),
        ({"p_ids": np.array([[1, 1]])}, CoilvisValueError, "twice"),
        ({"q_ids": np.array([[0, 1], [1, 2]]), "q_probs": np.array([[0.5, 0.5], [0.5, 0.5]])}, CoilvisValueError, "leading shape"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    args = {
        "p_ids": np.array([[0, 1]]),
        "p_probs": np.array([[0.5, 0.3]]),
        "q_ids": np.array([[1, 2]]),
        "q_probs": np.array([[0.6, 0.2]]),
    }
    options = {name: kwargs.pop(name) for name in ("kind", "atol") if name in kwargs}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        topk_divergence(**args, **options)
