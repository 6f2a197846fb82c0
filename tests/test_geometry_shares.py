"""Tests of coilvis.geometry.shares (segments split radially into shares of their area) and of
coilvis.geometry.unwind_points (points carried with their segment while the coil unwinds)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from coilvis import geometry as geo
from coilvis.errors import CoilvisTypeError, CoilvisValueError

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from geometry_cases import FAST, make_spiral, shoelace, spiral_options
except ImportError:  # tests is a package
    from tests.geometry_cases import FAST, make_spiral, shoelace, spiral_options


@st.composite
def layouts(draw: Any) -> geo.Layout:
    """A spiral (either way round), a circle, or the line or rows one of them unwinds to."""
    kind = draw(st.sampled_from(["spiral", "circle", "line", "rows"]))
    if kind == "circle":  # at least 3 polygon steps round the circle (1 x 1 is a segment of no area)
        n = draw(st.integers(1, 40))
        lay = geo.circle_layout(n, clockwise=draw(st.booleans()), n_arc=draw(st.integers(-(-3 // n), 12)))
    else:
        opts = draw(spiral_options(max_n=60))
        opts["n_arc"] = draw(st.integers(1, 12))
        lay = make_spiral(opts)
    if kind == "line":
        return geo.unwound_layout(lay)
    if kind == "rows":
        return geo.wrapped_line_layout(lay, scale=draw(st.floats(0.1, 1.0)))
    return lay


@st.composite
def fractions(draw: Any, n: int) -> np.ndarray:
    """(n, p) shares summing to 1, some of them 0, some tiny."""
    p = draw(st.integers(1, 7))
    raw = np.array(
        draw(st.lists(st.one_of(st.just(0.0), st.floats(1e-9, 1.0)), min_size=n * p, max_size=n * p)), dtype=np.float64
    ).reshape(n, p)
    raw[:, -1] += (raw.sum(axis=1) == 0)  # every row holds something
    return raw / raw.sum(axis=1, keepdims=True)


def _edges(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(outer start to end, inner start to end) of polygons (..., m)."""
    h = xs.shape[-1] // 2
    return xs[..., :h], xs[..., h:][..., ::-1]


@FAST
@given(data=st.data())
def test_piece_areas_are_the_fractions_of_the_segment(data: Any) -> None:
    lay = data.draw(layouts())
    frac = data.draw(fractions(lay.n))
    xs, ys = geo.split_radially(lay.poly_xs, lay.poly_ys, frac)
    assert xs.shape == ys.shape == (lay.n, frac.shape[1], lay.n_vertices)
    whole = shoelace(lay.poly_xs, lay.poly_ys)
    areas = np.stack([shoelace(xs[:, j], ys[:, j]) for j in range(frac.shape[1])], axis=1)
    scale = np.abs(whole)[:, None]
    np.testing.assert_allclose(areas / scale, frac * np.sign(whole)[:, None], atol=1e-9)
    np.testing.assert_allclose(areas.sum(axis=1), whole, rtol=1e-9, atol=1e-12 * scale.max())


@FAST
@given(data=st.data())
def test_pieces_tile_the_segment_from_its_inner_edge_to_its_outer_edge(data: Any) -> None:
    lay = data.draw(layouts())
    frac = data.draw(fractions(lay.n))
    p = frac.shape[1]
    xs, ys = geo.split_radially(lay.poly_xs, lay.poly_ys, frac)
    for pieces, poly in ((xs, lay.poly_xs), (ys, lay.poly_ys)):
        outer, inner = _edges(pieces)
        seg_outer, seg_inner = _edges(poly)
        np.testing.assert_array_equal(inner[:, 0], seg_inner)  # the innermost starts at the inner edge, exactly
        np.testing.assert_array_equal(outer[:, -1], seg_outer)  # the outermost ends at the outer edge
        np.testing.assert_array_equal(outer[:, :-1], inner[:, 1:])  # neighbours share their boundary bit for bit
    # every piece turns the segment's way (none folded over), each boundary further out than the last
    whole = shoelace(lay.poly_xs, lay.poly_ys)
    for j in range(p):
        assert np.all(shoelace(xs[:, j], ys[:, j]) * np.sign(whole) >= -1e-12 * np.abs(whole))
    t = geo.share_bounds(lay.poly_xs, lay.poly_ys, frac)
    assert t.shape == (lay.n, p + 1) and np.all(t[:, 0] == 0.0) and np.all(t[:, -1] == 1.0)
    assert np.all(np.diff(t, axis=1) >= 0.0)
    np.testing.assert_array_equal(np.diff(t, axis=1)[frac == 0.0], 0.0)  # a zero share: a zero-width piece


@FAST
@given(data=st.data())
def test_on_a_coil_each_boundary_is_an_arc_at_its_own_radius(data: Any) -> None:
    opts = data.draw(spiral_options(max_n=40))
    lay = make_spiral(opts)
    frac = data.draw(fractions(lay.n))
    xs, ys = geo.split_radially(lay.poly_xs, lay.poly_ys, frac)
    r_outer, r_inner = _edges(np.hypot(xs, ys))
    r_seg_out, r_seg_in = _edges(np.hypot(lay.poly_xs, lay.poly_ys))
    # radii grow outward piece by piece, within the segment's band
    assert np.all(r_outer >= r_inner - 1e-9)
    assert np.all(r_inner >= r_seg_in[:, None, :] - 1e-9) and np.all(r_outer <= r_seg_out[:, None, :] + 1e-9)
    # the outer edge is longer than the inner: the area inside a boundary grows faster than
    # its radial parameter, so each boundary sits further out than its share of the area
    t = geo.share_bounds(lay.poly_xs, lay.poly_ys, frac)
    inside = np.concatenate([np.zeros((lay.n, 1)), np.cumsum(frac, axis=1)], axis=1)
    assert np.all(t >= inside - 1e-12)


def test_a_rectangle_splits_in_proportion_and_an_annulus_splits_by_area() -> None:
    coil = geo.circle_layout(8, n_arc=32)
    line = geo.unwound_layout(coil)
    frac = np.tile([0.6, 0.3, 0.1], (8, 1))
    np.testing.assert_allclose(geo.share_bounds(line.poly_xs, line.poly_ys, frac), np.tile([0, 0.6, 0.9, 1.0], (8, 1)), atol=1e-12)
    t = geo.share_bounds(coil.poly_xs, coil.poly_ys, frac)
    r_in, r_out = coil.r[0] - coil.band_width / 2, coil.r[0] + coil.band_width / 2
    r = r_in + t * (r_out - r_in)
    inside = (r**2 - r_in**2) / (r_out**2 - r_in**2)  # of an exact annulus: the polygon's chords differ a little
    np.testing.assert_allclose(inside, np.tile([0, 0.6, 0.9, 1.0], (8, 1)), atol=1e-3)
    assert np.all(t[:, 1] > 0.6)  # the outer rings are wider around: the same area is thinner


def test_a_segment_of_one_share_is_itself() -> None:
    lay = geo.spiral_layout(30)
    xs, ys = geo.split_radially(lay.poly_xs, lay.poly_ys, np.ones((30, 1)))
    np.testing.assert_array_equal(xs[:, 0], lay.poly_xs)
    np.testing.assert_array_equal(ys[:, 0], lay.poly_ys)


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"fractions": np.full((3, 2), 0.4)}, CoilvisValueError, "fractions: expected each row to sum to 1"),
        ({"fractions": [[1.5, -0.5]] * 3}, CoilvisValueError, "fractions: expected finite values >= 0"),
        ({"fractions": [[np.nan, 1.0]] * 3}, CoilvisValueError, "fractions"),
        ({"fractions": np.ones((2, 1))}, CoilvisValueError, "fractions: expected shape (3, p)"),
        ({"fractions": np.ones((3, 0))}, CoilvisValueError, "fractions"),
        ({"fractions": [["a"]] * 3}, CoilvisTypeError, "fractions"),
        ({"fractions": np.ones((3, 1), dtype=bool)}, CoilvisTypeError, "fractions"),
        ({"poly_xs": np.zeros((3, 5))}, CoilvisValueError, "poly_xs"),
        ({"poly_ys": np.zeros((3, 6))}, CoilvisValueError, "poly_ys"),
        ({"poly_xs": np.full((3, 4), np.inf)}, CoilvisValueError, "poly_xs, poly_ys: expected finite"),
    ],
)
def test_bad_input_names_the_argument(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    lay = geo.circle_layout(3, n_arc=1)
    args = {"poly_xs": lay.poly_xs, "poly_ys": lay.poly_ys, "fractions": np.ones((3, 1)), **kwargs}
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        geo.split_radially(**args)


def test_radial_pieces_refuses_bounds_out_of_order() -> None:
    lay = geo.circle_layout(3, n_arc=1)
    with pytest.raises(CoilvisValueError, match="bounds"):
        geo.radial_pieces(lay.poly_xs, lay.poly_ys, [[0.0, 0.7, 0.5, 1.0]] * 3)
    with pytest.raises(CoilvisValueError, match="bounds"):
        geo.radial_pieces(lay.poly_xs, lay.poly_ys, [[0.0, 1.2]] * 3)


# ------------------------------------------------------------------ carried with the unwind


@FAST
@given(opts=spiral_options(max_n=30), progress_frac=st.floats(0.0, 1.0), data=st.data())
def test_shares_tile_their_segment_while_it_unwinds(opts: dict[str, Any], progress_frac: float, data: Any) -> None:
    """unwind_shares cuts each moving segment at blended radial parameters: the pieces tile it
    at every moment (edges its edges, areas summing to its area), and are the coil's pieces
    before the segment moves and the line's once it has arrived."""
    lay = make_spiral(opts)
    line = geo.wrapped_line_layout(lay, scale=0.5)
    frac = data.draw(fractions(lay.n))
    p = frac.shape[1]
    progress = progress_frac * lay.n
    t0 = geo.share_bounds(lay.poly_xs, lay.poly_ys, frac)
    t1 = geo.share_bounds(line.poly_xs, line.poly_ys, frac)
    x, y = geo.unwind_shares(lay, progress, t0, t1, unwound=line)
    mid = geo.unwind_positions(lay, progress, unwound=line)
    for pieces, poly in ((x, mid.poly_xs), (y, mid.poly_ys)):
        outer, inner = _edges(pieces)
        seg_outer, seg_inner = _edges(poly)
        np.testing.assert_array_equal(inner[:, 0], seg_inner)
        np.testing.assert_array_equal(outer[:, -1], seg_outer)
        np.testing.assert_array_equal(outer[:, :-1], inner[:, 1:])
    area = sum(shoelace(x[:, j], y[:, j]) for j in range(p))
    np.testing.assert_allclose(area, shoelace(mid.poly_xs, mid.poly_ys), rtol=1e-9, atol=1e-12 * max(lay.pitch, 1.0) ** 2)
    w = geo.unwind_weights(lay.n, progress)
    cx, _ = geo.split_radially(lay.poly_xs, lay.poly_ys, frac)
    lx, _ = geo.split_radially(line.poly_xs, line.poly_ys, frac)
    np.testing.assert_array_equal(x[w == 1.0], lx[w == 1.0])
    np.testing.assert_array_equal(x[w == 0.0], cx[w == 0.0])


def test_unwind_shares_refuses_bounds_of_another_shape() -> None:
    lay = geo.circle_layout(4)
    t = np.tile([0.0, 0.5, 1.0], (4, 1))
    with pytest.raises(CoilvisValueError, match="coil_bounds"):
        geo.unwind_shares(lay, 1.0, t[:3], t)
    with pytest.raises(CoilvisValueError, match="line_bounds"):
        geo.unwind_shares(lay, 1.0, t, t[:, :2])
