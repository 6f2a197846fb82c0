"""Mass rings on the coil (coilvis.coil(record, mass=True)): the Bokeh model graph (k + 1 pieces per
segment, their areas, colours and hover), bad input, the command line, and real headless Chromium
(the rings render, travel with the unwind as coilvis.geometry.unwind_shares says, and hover shows
each share's token)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bokeh.models import CustomJSHover, HoverTool

import coilvis
from coilvis import cli, geometry
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import display
from coilvis.views import _style
from coilvis.views.coil.mass import MASS_TITLE

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from coil_records import make_record
    from geometry_cases import shoelace
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.coil_records import make_record
    from tests.geometry_cases import shoelace

HOSTILE = '<img src=x onerror="window.__pwned=1">'
FIXTURES = Path(__file__).parent / "fixtures" / "served"


def spread_record(n: int = 20, *, seed: int = 3) -> coilvis.Record:
    """Random logits over 12 tokens (one of them hostile markup), some positions near certain."""
    rng = np.random.default_rng(seed)
    vocab = [f"tok{i}" for i in range(12)]
    vocab[4] = HOSTILE
    vocab[5] = " Paris"
    logits = rng.normal(size=(n, 12)) * 2.0
    logits[::4, 5] += 9.0  # every fourth position all but sure of " Paris"
    tokens = rng.integers(0, 12, n).tolist()
    return coilvis.from_logits(logits, tokens=tokens, vocab=vocab)


def expected_fractions(record: coilvis.Record, k: int) -> np.ndarray:
    """(n, k + 1) the top-k probabilities and the rest, straight from the record."""
    top = record.topk_probs[:, :k].astype(np.float64)
    return np.concatenate([top, 1.0 - top.sum(axis=1, keepdims=True)], axis=1)


def pieces(view: Any) -> tuple[np.ndarray, np.ndarray]:
    """(n, k + 1, m) the rings' polygons from the page's data."""
    data = view.mass.data
    n = view.record.seq_len
    return np.asarray(data["xs"]).reshape(n, -1, data["xs"].shape[1]), np.asarray(data["ys"]).reshape(n, -1, data["xs"].shape[1])


# ------------------------------------------------------------------ the model graph


@pytest.mark.parametrize(("mass_k", "want"), [(None, 5), (1, 1), (3, 3), (8, 8), (40, 10)])
def test_each_segment_holds_k_plus_one_pieces(mass_k: int | None, want: int) -> None:
    rec = make_record(24)  # k = 10
    kwargs = {} if mass_k is None else {"mass_k": mass_k}
    view = coilvis.coil(rec, mass=True, **kwargs)
    data = view.mass.data
    assert view.model("coil_mass_source") is view.mass
    assert len(data["pos"]) == rec.seq_len * (want + 1)
    np.testing.assert_array_equal(data["pos"], np.repeat(np.arange(rec.seq_len), want + 1))
    np.testing.assert_array_equal(np.reshape(data["rank"], (rec.seq_len, -1)), np.tile([*range(1, want + 1), 0], (rec.seq_len, 1)))
    assert data["xs"].shape == (rec.seq_len * (want + 1), view.coiled.n_vertices)


@pytest.mark.parametrize("layout", ["spiral", "circle"])
def test_piece_areas_are_the_probabilities_and_the_rest(layout: str) -> None:
    rec = spread_record(20)
    view = coilvis.coil(rec, mass=True, mass_k=4, layout=layout)
    xs, ys = pieces(view)
    want = expected_fractions(rec, 4)
    whole = shoelace(view.coiled.poly_xs, view.coiled.poly_ys)
    areas = np.stack([shoelace(xs[:, j], ys[:, j]) for j in range(5)], axis=1)
    np.testing.assert_allclose(areas / whole[:, None], want, atol=2e-4)  # float32 polygons
    # innermost the top token: the pieces go outward in rank order, the rest at the outer edge
    r_mid = np.hypot(xs, ys).mean(axis=2)
    assert np.all(np.diff(r_mid, axis=1) > -1e-4)
    pct = np.reshape(view.mass.data["pct"], (rec.seq_len, -1))
    np.testing.assert_allclose(pct, want * 100.0, atol=1e-3)
    assert np.all(want[:, 0] >= want[:, 1])  # largest innermost


def test_the_rings_tile_each_segment() -> None:
    rec = spread_record(12)
    view = coilvis.coil(rec, mass=True)
    xs, _ = pieces(view)
    h = view.coiled.n_vertices // 2
    seg = np.asarray(view.segments.data["xs"])
    np.testing.assert_allclose(xs[:, 0, h:], seg[:, h:], atol=1e-6)  # the inner edge
    np.testing.assert_allclose(xs[:, -1, :h], seg[:, :h], atol=1e-6)  # the outer edge
    np.testing.assert_array_equal(xs[:, :-1, :h], xs[:, 1:, h:][:, :, ::-1])  # shared boundaries


def test_shares_are_coloured_by_their_probability_and_the_rest_grey() -> None:
    rec = spread_record(16)
    view = coilvis.coil(rec, mass=True, mass_k=3, palette="Cividis")
    renderer = view.model("coil_mass")
    mapper = view.model("coil_color_mapper")
    assert renderer.glyph.fill_color.transform is mapper and renderer.glyph.fill_color.field == "color_pct"
    assert (mapper.low, mapper.high, mapper.nan_color) == (0.0, 100.0, _style.NAN_COLOR)
    assert list(mapper.palette) == list(_style.resolve_palette("Cividis", default="Viridis"))
    color_pct = np.reshape(view.mass.data["color_pct"], (rec.seq_len, -1))
    want = expected_fractions(rec, 3) * 100.0
    np.testing.assert_allclose(color_pct[:, :3], want[:, :3], atol=1e-3)
    assert np.all(np.isnan(color_pct[:, 3]))  # the rest: the mapper's grey
    colors = _style.map_colors(color_pct.ravel(), view.scale)
    assert colors[3::4] == [_style.NAN_COLOR] * rec.seq_len
    # the colour bar and the legend say what the rings are
    assert view.model("coil_color_bar").title == MASS_TITLE
    assert view.scale.legend.startswith("Rings: ") and "top 3 next tokens" in view.scale.legend


def test_the_hover_of_a_share_names_its_token_probability_and_rank() -> None:
    rec = spread_record(10)
    view = coilvis.coil(rec, mass=True, mass_k=4, tooltip_k=2)  # the table holds the rings' tokens too
    hover = view.model("coil_mass_hover")
    assert isinstance(hover, HoverTool) and hover.renderers == [view.model("coil_mass")]
    for field in ("@pos{token}", "@vocab{share}", "@pct{pct}", "@rank{rank}", "@pos{next}"):
        assert field in hover.tooltips
    fmt = view.model("coil_mass_format")
    assert isinstance(fmt, CustomJSHover) and hover.formatters["@vocab"] is fmt and fmt.args["k"] == 4
    assert hover.formatters["@pos"] is view.model("coil_text_format")
    vocab = view.model("coil_vocab_source").data
    assert fmt.args["vocab"] is view.model("coil_vocab_source")
    rows = np.reshape(view.mass.data["vocab"], (rec.seq_len, -1))
    assert np.all(rows[:, -1] == -1)  # the rest
    ids = np.asarray(vocab["token_id"])[rows[:, :4]]
    np.testing.assert_array_equal(ids, rec.topk_ids[:, :4])
    labels = [[vocab["label"][v] for v in row] for row in rows[:, :4]]
    assert labels == [[display(rec.token_text(int(t)), max_len=32) for t in row] for row in rec.topk_ids[:, :4]]
    assert HOSTILE not in fmt.code and "tok1" not in fmt.code  # token text only as data
    # the segments' own hover still highlights, but leaves the tooltip to the rings
    assert view.model("coil_hover").tooltips is None


def test_without_mass_the_coil_is_unchanged() -> None:
    rec = make_record(30)
    plain, rings = coilvis.coil(rec, attention="mean"), coilvis.coil(rec, attention="mean", mass=True)
    assert plain.mass is None and plain.doc.select_one({"name": "coil_mass"}) is None
    assert plain.doc.select_one({"name": "coil_mass_hover"}) is None
    assert plain.model("coil_hover").tooltips is not None
    assert plain.scale.title == _style.view_scale("coil", "prob", [1.0]).title
    assert sorted(plain.segments.data) == sorted(rings.segments.data)
    for column in ("xs", "ys", "anchor_x", "anchor_y", "top_prob_pct"):  # arcs attach where they did
        np.testing.assert_array_equal(plain.segments.data[column], rings.segments.data[column])
    np.testing.assert_array_equal(plain.links.data["query"], rings.links.data["query"])


def test_the_rings_draw_over_the_segments_and_under_the_arcs_and_labels() -> None:
    rec = make_record(30)
    view = coilvis.coil(rec, attention="mean", mass=True)
    names = [r.name for r in view.figure.renderers]
    order = [names.index(n) for n in ("coil_segments", "coil_mass", "coil_mass_outline", "coil_arcs", "coil_labels")]
    assert order == sorted(order)
    outline = view.model("coil_mass_outline")
    assert outline.data_source is view.segments  # moves with the segments, outlines the selected one


def test_labels_are_readable_on_the_piece_under_them() -> None:
    rec = spread_record(16)
    view = coilvis.coil(rec, mass=True, mass_k=3, label_font_px=12)
    lab = view.labels.data
    assert len(lab["pos"]) > 0
    fractions = expected_fractions(rec, 3)
    t = geometry.share_bounds(view.coiled.poly_xs, view.coiled.poly_ys, fractions)
    for pos, color in zip(lab["pos"], lab["text_color"], strict=True):
        piece = int(np.sum(t[pos, 1:] <= 0.5))
        value = np.nan if piece == 3 else fractions[pos, piece] * 100.0
        assert color == _style.text_colors(_style.map_colors([value], view.scale))[0]


def test_the_unwind_carries_the_radial_bounds() -> None:
    rec = spread_record(14)
    view = coilvis.coil(rec, mass=True, mass_k=3, animate=True, autoplay=False)
    data = view.mass.data
    fractions = expected_fractions(rec, 3)
    t0 = geometry.share_bounds(view.coiled.poly_xs, view.coiled.poly_ys, fractions)
    np.testing.assert_allclose(np.reshape(data["t_lo"], (14, 4)), t0[:, :-1], atol=1e-6)
    np.testing.assert_allclose(np.reshape(data["t_hi"], (14, 4)), t0[:, 1:], atol=1e-6)
    line_t = np.concatenate([np.zeros((14, 1)), np.cumsum(fractions, axis=1)], axis=1)  # a straight segment: in proportion
    np.testing.assert_allclose(np.reshape(data["t_line_lo"], (14, 4)), line_t[:, :-1], atol=1e-6)
    np.testing.assert_allclose(np.reshape(data["t_line_hi"], (14, 4)), line_t[:, 1:], atol=1e-6)
    scrub = view.model("coil_unwind_scrub")
    assert all(cb.args["unwind"].args["mass"] is view.mass for cb in scrub.js_property_callbacks["change:value"])
    assert "t_lo" not in coilvis.coil(rec, mass=True).mass.data  # a still coil keeps the page small


def test_a_position_without_a_distribution_is_all_rest() -> None:
    rec = coilvis.from_logprobs(json.loads((FIXTURES / "openai_chat.json").read_text(encoding="utf-8")))
    unsent = ~np.isfinite(rec.topk_probs).any(axis=1)
    assert unsent.any()  # the last position: no distribution sent
    view = coilvis.coil(rec, mass=True)
    k = view.mass.data["xs"].shape[0] // rec.seq_len - 1
    vocab = np.reshape(view.mass.data["vocab"], (rec.seq_len, -1))
    pct = np.reshape(view.mass.data["pct"], (rec.seq_len, -1))
    assert np.all(vocab[unsent, -1] == -2) and np.all(np.isnan(pct[unsent]))
    xs, ys = pieces(view)
    whole = shoelace(view.coiled.poly_xs, view.coiled.poly_ys)
    np.testing.assert_allclose(shoelace(xs[unsent, k], ys[unsent, k]) / whole[unsent], 1.0, atol=1e-4)


def test_a_page_draws_the_rings_of_its_coil() -> None:
    view = coilvis.page(make_record(12), coil_options={"mass": True, "mass_k": 2})
    source = view.model("coil_mass_source")
    assert len(source.data["pos"]) == 12 * 3


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"mass": "yes"}, CoilvisTypeError, "mass: expected True or False"),
        ({"mass": 1}, CoilvisTypeError, "mass: expected True or False"),
        ({"mass": None}, CoilvisTypeError, "mass: "),
        ({"mass": True, "mass_k": 0}, CoilvisValueError, "mass_k: expected >= 1, got 0"),
        ({"mass": True, "mass_k": -2}, CoilvisValueError, "mass_k: "),
        ({"mass": True, "mass_k": 2.5}, CoilvisTypeError, "mass_k: "),
        ({"mass": True, "mass_k": True}, CoilvisTypeError, "mass_k: "),
        ({"mass_k": 0}, CoilvisValueError, "mass_k: "),  # refused whether or not the rings are on
        ({"mass": True, "color": "entropy"}, CoilvisValueError, "color: mass rings colour each share by its probability"),
    ],
)
def test_bad_mass_options_name_the_argument(kwargs: dict[str, Any], error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=f"^{re.escape(words)}"):
        coilvis.coil(make_record(8), **kwargs)


def test_a_comparison_has_no_rings() -> None:
    a, b = make_record(8, attention=False, seed=1), make_record(8, attention=False, seed=2)
    comparison = coilvis.compare(a, b)
    with pytest.raises(CoilvisValueError, match="^mass: not an option of the coil of a Comparison"):
        coilvis.coil(comparison, mass=True)


# ------------------------------------------------------------------ the command line


def test_coil_mass_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.chdir(tmp_path)
    rec = make_record(10)
    rec.save(tmp_path / "r.coil")
    assert cli.main(["coil", "--record", "r.coil", "--mass", "--mass-k", "3", "-o", "rings.html"]) == 0
    html = (tmp_path / "rings.html").read_text(encoding="utf-8")
    assert '"coil_mass_source"' in html and '"coil_mass_hover"' in html
    assert cli.main(["coil", "--record", "r.coil", "-o", "plain.html"]) == 0
    assert "coil_mass" not in (tmp_path / "plain.html").read_text(encoding="utf-8")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:  # --mass-k means nothing without --mass
        cli.main(["coil", "--record", "r.coil", "--mass-k", "3", "-o", "x.html"])
    assert exc.value.code == 2 and "--mass" in capsys.readouterr().err
    assert cli.main(["coil", "--record", "r.coil", "--mass", "--color", "entropy", "-o", "x.html"]) == 1
    assert "color: mass rings" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()


# ------------------------------------------------------------------ real headless Chromium

READ_MASS = """
() => {
  const doc = Bokeh.documents[0], get = (name) => doc.get_model_by_name(name)
  const mass = get("coil_mass_source").data, seg = get("coil_segment_source").data
  const c = get("coil_segment_source").__coilvis_unwind
  return {xs: Array.from(mass.xs), ys: Array.from(mass.ys), seg_xs: Array.from(seg.xs),
          progress: c == null ? 0 : c.state.progress}
}
"""


def _piece_middle(xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
    """A point inside a piece: halfway between the middle of its outer edge and the inner vertex facing it."""
    m = xs.shape[-1]
    v = (m // 2) // 2
    return float(0.5 * (xs[v] + xs[m - 1 - v])), float(0.5 * (ys[v] + ys[m - 1 - v]))


def _pixel(png: bytes, x: float, y: float) -> str:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    r, g, b = image.getpixel((round(x), round(y)))
    return f"#{r:02x}{g:02x}{b:02x}"


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_the_rings_render_and_hover_shows_each_shares_token(browser_session, tmp_path: Path) -> None:  # noqa: F811
    rec = spread_record(12)
    view = coilvis.coil(rec, mass=True, mass_k=3, labels=False, layout="circle")
    page = browser_session.open(coilvis.save(view, tmp_path / "rings.html"))
    assert page.errors == [] and page.external_requests == []
    assert page.view_indices("coil_mass") == list(range(12 * 4))
    xs, ys = pieces(view)
    fractions = expected_fractions(rec, 3)
    colors = np.reshape(_style.map_colors(np.reshape(view.mass.data["color_pct"], -1), view.scale), (12, 4))
    # what is on the screen: the colour of every wide piece at its middle (a share's or the rest's grey)
    shot = page.page.screenshot()
    checked = 0
    for i in range(12):
        for j in range(4):
            if fractions[i, j] < 0.25:
                continue
            sx, sy = page.data_to_page("coil_figure", *_piece_middle(xs[i, j], ys[i, j]))
            assert _pixel(shot, sx, sy) == str(colors[i, j]).lower(), (i, j)
            checked += 1
    assert checked >= 8
    # hover a share: its token's exact label and id, its probability and its rank
    i = int(np.argmax(fractions[:, 0]))
    page.hover_data("coil_figure", *_piece_middle(xs[i, 0], ys[i, 0]))
    tip = page.tooltip_text()
    token = int(rec.topk_ids[i, 0])
    assert f"{display(rec.token_text(token))}  (id {token})" in tip
    assert "1 of the top 3" in tip and f"position {i}" in tip
    assert page.column("coil_mass_hover_outline_source", "row") == [i * 4]  # the piece outlined, on the overlay
    p = fractions[i, 0] * 100.0
    assert (f"{p:.1f}%" if p >= 9.995 else f"{p:.2f}%") in tip
    assert tip.count("(id ") >= 2  # the position's own token too
    # the rest of a spread position
    k = int(np.argmax(fractions[:, 3]))
    page.hover_data("coil_figure", *_piece_middle(xs[k, 3], ys[k, 3]))
    tip = page.tooltip_text()
    assert "the rest: every token outside the top 3" in tip and "below the top 3" in tip
    # a hostile token's share is shown as text, never run
    i, j = np.argwhere(rec.topk_ids[:, :3] == 4)[0]
    page.hover_data("coil_figure", *_piece_middle(xs[i, j], ys[i, j]))
    assert f"{display(HOSTILE, max_len=32)}  (id 4)" in page.tooltip_text()  # the table's labels: at most 32 characters
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
@pytest.mark.parametrize("layout", ["spiral", "circle"])
def test_the_rings_travel_with_the_unwind(browser_session, tmp_path: Path, layout: str) -> None:  # noqa: F811
    """unwind.js cuts each moving segment's rings where coilvis.geometry.unwind_shares says, at
    playhead positions between the coil and the rows, to a fraction of a pixel; the arcs still
    draw and the rings on the rows answer the hover."""
    rec = make_record(30, seed=4)
    view = coilvis.coil(rec, mass=True, mass_k=4, animate=True, autoplay=False, attention="mean", layout=layout)
    coiled, line, n = view.coiled, view.unwound, rec.seq_len
    fractions = expected_fractions(rec, 4)
    t0 = geometry.share_bounds(coiled.poly_xs, coiled.poly_ys, fractions)
    t1 = geometry.share_bounds(line.poly_xs, line.poly_ys, fractions)
    page = browser_session.open(coilvis.save(view, tmp_path / f"rings_{layout}.html"))
    x0, _ = page.data_to_page("coil_figure", 0.0, 0.0)
    x1, _ = page.data_to_page("coil_figure", 1.0, 0.0)
    tol = 0.25 / abs(x1 - x0)  # a quarter of a CSS pixel, in data units
    before = np.reshape(page.evaluate(READ_MASS)["xs"], (n, 5, -1))
    reached = 0.0
    for progress in (0.0, 3.5, 11.25, 22.8, 7.6, 30.0):
        if progress > 0:
            page.evaluate("(p) => { Bokeh.documents[0].get_model_by_name('coil_unwind_scrub').value = p }", progress)
            page.page.wait_for_function(
                "(p) => Bokeh.documents[0].get_model_by_name('coil_segment_source').__coilvis_unwind?.state.progress === p",
                arg=progress,
            )
            page.wait_idle()
        got = page.evaluate(READ_MASS)
        assert got["progress"] == pytest.approx(progress)
        want_x, want_y = geometry.unwind_shares(coiled, progress, t0, t1, unwound=line)
        where = f"{layout} at {progress}"
        np.testing.assert_allclose(np.reshape(got["xs"], (n, 5, -1)), want_x, atol=tol, err_msg=where)
        np.testing.assert_allclose(np.reshape(got["ys"], (n, 5, -1)), want_y, atol=tol, err_msg=where)
        # consistent with their segment: the innermost piece starts on its inner edge, the rest ends on its outer
        seg = np.reshape(got["seg_xs"], (n, -1))
        h = seg.shape[1] // 2
        xs = np.reshape(got["xs"], (n, 5, -1))
        np.testing.assert_allclose(xs[:, 0, h:], seg[:, h:], atol=1e-5, err_msg=where)
        np.testing.assert_allclose(xs[:, -1, :h], seg[:, :h], atol=1e-5, err_msg=where)
        reached = max(reached, progress)
        moved = geometry.unwind_weights(n, progress) > 0
        assert np.all(np.abs(xs[moved] - before[moved]).max(axis=(1, 2)) > tol)  # the rings went with their segment
        untouched = np.arange(n) > reached
        np.testing.assert_array_equal(xs[untouched], before[untouched])  # segments never reached: not touched at all
    # all on the rows: a share there answers the hover
    i = int(np.argmax(fractions[:, 0]))
    px, py = geometry.radial_pieces(line.poly_xs, line.poly_ys, t1)
    page.hover_data("coil_figure", *_piece_middle(px[i, 0], py[i, 0]))
    token = int(rec.topk_ids[i, 0])
    assert f"{display(rec.token_text(token))}  (id {token})" in page.tooltip_text()
    assert page.view_indices("coil_arcs")  # the arcs still draw
    assert page.errors == []
