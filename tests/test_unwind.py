"""The unwind animation: model graph, then real headless Chromium (play, pause, scrub, pacing,
and unwind.js held to coilvis.geometry's reference blend at intermediate frames)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from bokeh.models import Button, CustomJS, PreText, Slider, Toggle

import coilvis
from coilvis import geometry
from coilvis.errors import CoilvisValueError
from coilvis.views.schedule import record_schedule
from coilvis.views.unwind import unwind_js

try:
    from browser import browser_session  # noqa: F401  (a fixture)
except ImportError:  # pragma: no cover - run from the repository root
    from tests.browser import browser_session  # noqa: F401

HOSTILE = '<img src=x onerror="window.__pwned=1">'


def paced_record(n: int = 8, *, vocab_size: int = 16) -> coilvis.Record:
    """Even positions certain (0 bits), odd positions uniform over 16 tokens (4 bits)."""
    logits = np.full((n, vocab_size), -1e4, dtype=np.float32)
    logits[0::2, 1] = 0.0
    logits[1::2, :] = 0.0
    vocab = [f"t{i}" for i in range(vocab_size)]
    vocab[3] = HOSTILE
    tokens = [1, 3] * (n // 2) + [1] * (n % 2)
    return coilvis.from_logits(logits, tokens=tokens, vocab=vocab)


def test_animate_adds_named_controls_and_the_schedule() -> None:
    rec = paced_record()
    view = coilvis.coil(rec, animate=True, duration_s=6.0, floor_bits=0.5)
    for name, cls in (
        ("coil_unwind_play", Button),
        ("coil_unwind_restart", Button),
        ("coil_unwind_loop", Toggle),
        ("coil_unwind_speed", Slider),
        ("coil_unwind_scrub", Slider),
        ("coil_unwind_readout", PreText),
    ):
        assert isinstance(view.model(name), cls), name
    assert view.model("coil_unwind_scrub").end == rec.seq_len
    expected = record_schedule(rec, floor_bits=0.5, duration_s=6.0)
    data = view.segments.data
    np.testing.assert_allclose(data["dwell_s"], expected.dwell_s, rtol=1e-6)
    np.testing.assert_allclose(data["start_s"], expected.start_s, rtol=1e-6, atol=1e-6)
    # certain positions (0 bits) dwell 0.5 / 4.5 as long as uniform ones (4 bits)
    np.testing.assert_allclose(data["dwell_s"][1] / data["dwell_s"][0], 9.0, rtol=1e-5)
    assert view.schedule.duration_s == 6.0


def test_the_static_coil_is_unchanged_by_animate() -> None:
    rec = paced_record(12)
    still, moving = coilvis.coil(rec), coilvis.coil(rec, animate=True)
    for column in ("xs", "ys", "x", "y", "angle_rad", "anchor_x", "anchor_y"):
        np.testing.assert_array_equal(still.segments.data[column], moving.segments.data[column])
    # the unwound targets are rows below the coil, laid out by the geometry module
    line = moving.unwound
    assert line.kind == "line" and line.bounds[3] < moving.coiled.bounds[1]
    np.testing.assert_allclose(moving.segments.data["x_line"], line.x.astype(np.float32))
    np.testing.assert_allclose(moving.segments.data["y_line"], line.y.astype(np.float32))


def test_the_javascript_comes_from_the_package_file_and_holds_no_token_text() -> None:
    rec = paced_record()
    view = coilvis.coil(rec, animate=True, autoplay=True)
    code = unwind_js()
    assert "requestAnimationFrame" in code
    callbacks = [m for m in view.doc.select({"type": CustomJS}) if (m.name or "").startswith("coil_unwind_")]
    script = view.model("coil_unwind_js")
    assert script.code == code  # the page holds the file once
    actions = {
        f"coil_unwind_{name}_js": action
        for name, action in (("toggle", "toggle"), ("scrub", "scrub"), ("restart", "restart"), ("loop", "loop"),
                             ("speed", "speed"), ("autoplay", "play"))
    }  # fmt: skip
    assert {c.name for c in callbacks} | {c.name for c in view.ready} == {*actions, "coil_unwind_js"}
    for cb in [*callbacks, *view.ready]:
        assert HOSTILE not in cb.code and "onerror" not in cb.code
        assert all(v not in ("t1", "t3") for v in cb.args.values() if isinstance(v, str))
        if cb is not script:  # each control runs the script with its own action
            assert cb.args == {"unwind": script}
            assert cb.code == f'unwind.execute(cb_obj, {{action: "{actions[cb.name]}"}})'
    assert view.ready and view.ready[0].name == "coil_unwind_autoplay_js"


def test_an_animated_coil_autoplays_by_default() -> None:
    """The default animated coil plays by itself once the page is ready; autoplay=False
    (what tests that drive the controls pass) leaves it paused; a still coil has nothing to play."""
    rec = paced_record()
    view = coilvis.coil(rec, animate=True)
    assert [cb.name for cb in view.ready] == ["coil_unwind_autoplay_js"]
    assert view.ready[0].code == 'unwind.execute(cb_obj, {action: "play"})'
    assert view.ready[0].args["unwind"] is view.model("coil_unwind_js")
    assert view.model("coil_unwind_loop").active is False  # so it stops at the end
    # the page runs it on document_ready
    callbacks = view.doc.callbacks.js_event_callbacks.get("document_ready", [])
    assert view.ready[0] in callbacks
    paused = coilvis.coil(rec, animate=True, autoplay=False)
    assert paused.ready == [] and "document_ready" not in paused.doc.callbacks.js_event_callbacks
    assert coilvis.coil(rec).ready == []
    assert coilvis.coil(rec, autoplay=False).ready == []  # autoplay needs animate to matter


def test_bad_unwind_options_name_the_argument() -> None:
    rec = paced_record()
    with pytest.raises(CoilvisValueError, match="pace"):
        coilvis.coil(rec, animate=True, pace="speed")
    with pytest.raises(CoilvisValueError, match="duration_s"):
        coilvis.coil(rec, animate=True, duration_s=0.0)
    with pytest.raises(TypeError, match="animate"):
        coilvis.coil(rec, animate="yes")


# ------------------------------------------------------------------ real headless Chromium

SAMPLER = """
() => {
  const src = Bokeh.documents[0].get_model_by_name("coil_segment_source")
  window.__samples = []
  const tick = (now) => {
    const c = src.__coilvis_unwind
    if (c != null) window.__samples.push([now, c.state.progress])
    if (window.__samples.length < 100000) requestAnimationFrame(tick)
  }
  requestAnimationFrame(tick)
}
"""


def _progress(page) -> float:
    return float(page.model_attr("coil_unwind_scrub", "value"))


@pytest.mark.slow
@pytest.mark.browser
def test_play_pause_and_scrub_in_the_browser(browser_session, tmp_path) -> None:  # noqa: F811
    rec = paced_record(16)
    view = coilvis.coil(rec, animate=True, duration_s=4.0, autoplay=False)  # paused until ▶ play
    page = browser_session.open(coilvis.save(view, tmp_path / "unwind.html"))
    assert page.errors == [] and page.external_requests == []
    assert _progress(page) == 0.0
    page.page.click("text=▶ play")
    time.sleep(1.0)
    first = _progress(page)
    assert first > 0.5
    time.sleep(0.5)
    assert _progress(page) > first  # the playhead advances
    page.page.click("text=❚❚ pause")
    held = _progress(page)
    time.sleep(0.6)
    assert _progress(page) == held  # pause holds it
    # scrub: the segments before the playhead are on the rows, the rest still coiled
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coil_unwind_scrub').value = 10 }")
    time.sleep(0.2)
    xs = np.array(page.evaluate("() => Array.from(Bokeh.documents[0].get_model_by_name('coil_segment_source').data.xs)"))
    xs = xs.reshape(rec.seq_len, -1)
    line, coiled = view.unwound, view.coiled
    np.testing.assert_allclose(xs[3], line.poly_xs[3], atol=1e-4)
    np.testing.assert_allclose(xs[12], coiled.poly_xs[12], atol=1e-4)
    readout = page.model_attr("coil_unwind_readout", "text")
    assert readout.startswith("position 10 of 15")
    assert HOSTILE in readout  # shown literally, never run
    assert page.evaluate("() => window.__pwned === undefined")
    assert page.errors == []


_STATE_OF = "Bokeh.documents[0].get_model_by_name('coil_segment_source').__coilvis_unwind?.state"
_STATE = f"() => {_STATE_OF}"  # the unwind's controller state, read from the page


@pytest.mark.slow
@pytest.mark.browser
def test_a_default_animated_page_plays_by_itself_and_stops_at_the_end(browser_session, tmp_path) -> None:  # noqa: F811
    rec = paced_record(8)
    view = coilvis.coil(rec, animate=True, duration_s=1.5)  # autoplay by default, loop off
    page = browser_session.open(coilvis.save(view, tmp_path / "autoplay.html"))
    page.evaluate(SAMPLER)
    # no click: the playhead moves by itself once the page is ready
    page.page.wait_for_function(f"() => {_STATE_OF}?.playing === true && {_STATE_OF}.progress > 0", timeout=5000)
    assert page.model_attr("coil_unwind_play", "label") == "❚❚ pause"
    # and stops at the end: the last position, paused, offering a replay
    page.page.wait_for_function(f"() => {_STATE_OF}?.playing === false", timeout=10000)
    state = page.evaluate(_STATE)
    assert state["progress"] == rec.seq_len and _progress(page) == rec.seq_len
    assert page.model_attr("coil_unwind_play", "label") == "↻ replay"
    time.sleep(0.5)
    assert page.evaluate(_STATE)["progress"] == rec.seq_len and not page.evaluate(_STATE)["playing"]  # it stays there
    progress = np.array(page.evaluate("() => window.__samples"))[:, 1]
    assert progress.max() == rec.seq_len and np.all(np.diff(progress) >= 0)  # once through, never back
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
def test_with_loop_on_the_unwind_starts_again_at_the_end(browser_session, tmp_path) -> None:  # noqa: F811
    rec = paced_record(8)
    view = coilvis.coil(rec, animate=True, duration_s=0.8, autoplay=False)
    page = browser_session.open(coilvis.save(view, tmp_path / "loop.html"))
    assert _progress(page) == 0.0  # autoplay=False: paused until asked
    page.page.click("text=loop")
    page.evaluate(SAMPLER)
    page.page.click("text=▶ play")
    time.sleep(2.5)  # three times through
    state = page.evaluate(_STATE)
    assert state["playing"] and state["loop"]
    progress = np.array(page.evaluate("() => window.__samples"))[:, 1]
    assert np.sum(np.diff(progress) < -rec.seq_len / 2) >= 2  # wrapped back to the start, more than once
    assert page.errors == []


@pytest.mark.slow
@pytest.mark.browser
def test_dwell_follows_entropy_in_the_browser(browser_session, tmp_path) -> None:  # noqa: F811
    rec = paced_record(8)
    duration_s, floor = 3.6, 0.5
    view = coilvis.coil(rec, animate=True, duration_s=duration_s, floor_bits=floor, autoplay=False)
    page = browser_session.open(coilvis.save(view, tmp_path / "paced.html"))
    page.evaluate(SAMPLER)
    page.page.click("text=▶ play")
    deadline = time.time() + duration_s + 5
    while time.time() < deadline and _progress(page) < rec.seq_len:
        time.sleep(0.2)
    samples = np.array(page.evaluate("() => window.__samples"))
    assert page.errors == []
    t_ms, progress = samples[:, 0], samples[:, 1]
    # documented proportion: (floor + 4 bits) / (floor + 0 bits) = 9
    schedule = view.schedule
    np.testing.assert_allclose(schedule.dwell_s[1::2] / schedule.dwell_s[0::2], 9.0, rtol=1e-6)
    # and the playhead keeps to it: each frame shows the position the schedule gives at its
    # time since the clock started (the controller's clock_ms), or at the frame before's
    # when the sampler ran before the unwind in that frame; however long the frames (a busy
    # machine), it dwells on each position as long as the schedule says
    start = page.evaluate(_STATE)["clock_ms"]
    t_s = (t_ms - start) / 1000.0
    assert np.all(progress[t_s < 0] == 0)
    began = np.flatnonzero(t_s >= 0)
    assert began.size > 10
    for j in began[1:]:
        now, before = schedule.position_at(t_s[j]), schedule.position_at(max(t_s[j - 1], 0.0))
        assert before - 1e-3 <= progress[j] <= now + 1e-3, (t_s[j], progress[j], before, now)
    # the whole unwind lasts duration_s from the frame that starts its clock: it is not at
    # the end sooner, and it is there by the second sample after duration_s (a sampler that
    # ran before the unwind in its frame reads the frame before's position: two frames,
    # however long a busy machine makes them)
    at_end = int(np.flatnonzero(progress >= rec.seq_len)[0])
    assert t_s[at_end] > duration_s - 0.05, (t_s[at_end], duration_s)
    assert at_end < 2 or t_s[at_end - 2] < duration_s + 0.05, (t_s[at_end - 2 : at_end + 1], duration_s)


def attention_record(n: int = 40, *, vocab_size: int = 12, seed: int = 0) -> coilvis.Record:
    """Random logits and a random causal attention pattern (2 layers, 2 heads)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, vocab_size)) * 3.0
    pattern = np.tril(rng.random((2, 2, n, n)))
    pattern /= pattern.sum(axis=-1, keepdims=True)
    tokens = rng.integers(0, vocab_size, n).tolist()
    vocab = [f"w{i}" for i in range(vocab_size)]
    return coilvis.from_logits(logits, tokens=tokens, vocab=vocab, attention=pattern.astype(np.float32), attention_top_k=4)


# Everything the unwind moves, read back from the page.
READ_FRAME = """
() => {
  const doc = Bokeh.documents[0], get = (name) => doc.get_model_by_name(name)
  const seg = get("coil_segment_source").data, lab = get("coil_label_source").data
  const arcs = get("coil_arcs"), out = {}
  for (const c of ["xs", "ys", "x", "y", "angle_rad", "anchor_x", "anchor_y"]) out[c] = Array.from(seg[c])
  out.label_pos = Array.from(lab.pos)
  for (const c of ["x", "y", "angle_rad"]) out["label_" + c] = Array.from(lab[c])
  for (const name of ["x0", "y0", "x1", "y1", "cx", "cy"]) {
    const spec = arcs.glyph[name]
    out["arc_" + name] = Array.from(spec.transform.v_compute(arcs.data_source.data[spec.field]))
  }
  const head = get("coil_unwind_playhead_source").data
  out.playhead = [head.x[0], head.y[0]]
  const c = get("coil_segment_source").__coilvis_unwind
  out.progress = c == null ? 0 : c.state.progress
  return out
}
"""


def _turn(a: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * np.asarray(a, dtype=np.float64)))


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("layout", ["spiral", "circle"])
def test_unwind_js_follows_the_geometry_between_its_ends(browser_session, tmp_path, layout: str) -> None:  # noqa: F811
    """unwind.js, run in Chromium on a real animated page, puts segments, labels, arc anchors,
    arcs and the playhead where coilvis.geometry's reference blend says, at playhead times
    between the coil and the rows (forward and back), to a fraction of a pixel."""
    rec = attention_record(40)
    view = coilvis.coil(rec, animate=True, attention=[(0, "mean"), (1, 0)], layout=layout, autoplay=False)
    coiled, line, n = view.coiled, view.unwound, rec.seq_len
    page = browser_session.open(coilvis.save(view, tmp_path / f"unwind_{layout}.html"))
    x0, y0 = page.data_to_page("coil_figure", 0.0, 0.0)
    x1, _ = page.data_to_page("coil_figure", 1.0, 0.0)
    tol = 0.25 / abs(x1 - x0)  # a quarter of a CSS pixel, in data units
    query, key = view.links.data["query"], view.links.data["key"]
    assert query.size > 0
    for progress in (0.0, 2.25, 9.5, 17.8, 31.01, 6.4, 40.0):
        if progress > 0:  # move the playhead as the slider does (its callback may run later)
            page.evaluate("(p) => { Bokeh.documents[0].get_model_by_name('coil_unwind_scrub').value = p }", progress)
            page.page.wait_for_function(
                "(p) => Bokeh.documents[0].get_model_by_name('coil_segment_source').__coilvis_unwind?.state.progress === p",
                arg=progress,
            )
            page.wait_idle()
        got = page.evaluate(READ_FRAME)
        assert got["progress"] == pytest.approx(progress)
        mid = geometry.unwind_positions(coiled, progress, unwound=line)
        ax, ay = geometry.unwind_anchors(coiled, progress, unwound=line)
        arcs = geometry.bent_arcs(ax, ay, query, key, **geometry.arcs.js_constants())
        where = f"{layout} at {progress}"
        xs, ys = np.reshape(got["xs"], (n, -1)), np.reshape(got["ys"], (n, -1))
        np.testing.assert_allclose(xs, mid.poly_xs, atol=tol, err_msg=where)
        np.testing.assert_allclose(ys, mid.poly_ys, atol=tol, err_msg=where)
        for name, want in (("x", mid.x), ("y", mid.y), ("anchor_x", ax), ("anchor_y", ay)):
            np.testing.assert_allclose(got[name], want, atol=tol, err_msg=f"{where}: {name}")
        np.testing.assert_allclose(_turn(np.subtract(got["angle_rad"], mid.angle_rad)), 0.0, atol=1e-4, err_msg=where)
        pos = np.asarray(got["label_pos"], dtype=int)
        assert pos.size > 0
        np.testing.assert_allclose(got["label_x"], mid.x[pos], atol=tol, err_msg=where)
        np.testing.assert_allclose(got["label_y"], mid.y[pos], atol=tol, err_msg=where)
        np.testing.assert_allclose(got["label_angle_rad"], mid.label_angle_rad[pos], atol=1e-4, err_msg=where)
        for name in ("x0", "y0", "x1", "y1", "cx", "cy"):
            np.testing.assert_allclose(got["arc_" + name], getattr(arcs, name), atol=tol, err_msg=f"{where}: {name}")
        current = min(n - 1, int(np.floor(progress)))
        np.testing.assert_allclose(got["playhead"], [mid.x[current], mid.y[current]], atol=tol, err_msg=where)
        moving = int(np.sum((geometry.unwind_weights(n, progress) > 0) & (geometry.unwind_weights(n, progress) < 1)))
        assert moving == (0 if progress in (0.0, 40.0) else 1)  # an intermediate frame indeed
    assert page.errors == []


# The front layer (coilvis/views/coil/front.py), read back from the page: the front's positions
# and polygons, what the main renderers draw, the links each layer draws, the highlights.
READ_FRONT = """
() => {
  const doc = Bokeh.documents[0], get = (name) => doc.get_model_by_name(name)
  const seg = get("coil_segment_source").data, front = get("coil_unwind_front_source")
  const m = seg.xs.shape[1], rows = (a, i) => Array.from({length: m}, (_, j) => a[i * m + j])
  const fd = front.data, fl = get("coil_unwind_front_link_source").data
  const fc = get("coil_unwind_front_crossing_source").data
  return {
    front_pos: Array.from(fd.pos), front_xs: fd.xs.map((r) => Array.from(r)), front_ys: fd.ys.map((r) => Array.from(r)),
    seg_xs: Array.from(fd.pos, (i) => rows(seg.xs, i)), seg_ys: Array.from(fd.pos, (i) => rows(seg.ys, i)),
    front_color: Array.from(fd.top_prob_pct), seg_color: Array.from(fd.pos, (i) => seg.top_prob_pct[i]),
    main_segments: Array.from(get("coil_segments").view.indices), main_arcs: Array.from(get("coil_arcs").view.indices),
    front_query: Array.from(fl.query), front_key: Array.from(fl.key), front_choice: Array.from(fl.choice),
    crossing: Array.from(fc.query, (q, r) => [q, fc.key[r], fc.choice[r]]),
    front_selected: Array.from(front.selected.indices),
    main_selected: Array.from(get("coil_segment_source").selected.indices),
    front_highlight: Array.from(get("coil_unwind_front_arc_highlight").view.indices),
    main_highlight: Array.from(get("coil_arc_highlight").view.indices),
    playing: seg.pos.length > 0 && get("coil_segment_source").__coilvis_unwind.state.playing,
  }
}
"""

_AS_IF_PLAYING = """
([p, playing]) => {
  const c = Bokeh.documents[0].get_model_by_name("coil_segment_source").__coilvis_unwind
  c.state.playing = playing
  c.render(p, !playing)
}
"""


def _figure_shot(page) -> np.ndarray:  # noqa: ANN001
    """The coil figure's pixels (RGB, int) as the screen shows them."""
    import io

    from PIL import Image

    x, y, w, h = page.evaluate(
        """() => { const v = Bokeh.index.find_one(Bokeh.documents[0].get_model_by_name('coil_figure'))
        const r = v.canvas_view.el.getBoundingClientRect(); return [r.left, r.top, r.width, r.height] }"""
    )
    image = np.asarray(Image.open(io.BytesIO(page.page.screenshot())).convert("RGB")).astype(np.int64)
    return image[int(y) : int(y + h), int(x) : int(x + w)]


def _check_front(got: dict, view, at: int) -> list[int]:  # noqa: ANN001
    """The front read back (READ_FRONT) starts at position ``at`` and draws what the main layer
    would; returns the front's positions."""
    n, data = view.coiled.n, view.links.data
    front = got["front_pos"]
    assert front == list(range(at, at + len(front))) and len(front) >= 2
    np.testing.assert_array_equal(got["front_xs"], got["seg_xs"])  # drawn where the segments are, in their colours
    np.testing.assert_array_equal(got["front_ys"], got["seg_ys"])
    np.testing.assert_array_equal(got["front_color"], got["seg_color"])
    assert got["main_segments"] == [i for i in range(n) if i not in front]  # and hidden from the main layer
    def link(j: int) -> tuple[int, int, int]:
        return int(data["query"][j]), int(data["key"][j]), int(data["choice"][j])

    own = set(zip(got["front_query"], got["front_key"], got["front_choice"], strict=True))
    touching = {link(j) for j in range(len(data["query"])) if data["query"][j] in front or data["key"][j] in front}
    assert own == touching  # every arc of a front position moves with it
    crossing = {tuple(arc) for arc in got["crossing"]}
    assert crossing and not crossing & own  # and arcs crossing the front are drawn above it
    in_front = own | crossing
    main = {link(j) for j in got["main_arcs"]}
    shown = {link(j) for j in np.flatnonzero(data["choice"] == view.model("coil_choice_filter").group)}
    assert not main & in_front and main | (in_front & shown) == shown  # each arc shown drawn once
    # the playhead's position selected, its arcs highlighted, in the front
    assert got["front_selected"] == [0] and got["main_highlight"] == []
    playhead = {arc for arc in own & shown if at in arc[:2]}
    highlighted = {(got["front_query"][r], got["front_key"][r], got["front_choice"][r]) for r in got["front_highlight"]}
    assert highlighted == playhead
    return front


READ_FRONT_MASS = """
() => {
  const doc = Bokeh.documents[0], get = (name) => doc.get_model_by_name(name)
  const mass = get("coil_mass_source").data, fm = get("coil_unwind_front_mass_source").data
  const m = mass.xs.shape[1], pieces = mass.pos.length / get("coil_segment_source").data.pos.length
  const first = get("coil_unwind_front_source").data.pos[0] * pieces
  return {
    front_xs: fm.xs.map((r) => Array.from(r)), front_color: Array.from(fm.color_pct),
    mass_xs: fm.xs.map((_, r) => Array.from({length: m}, (_, j) => mass.xs[(first + r) * m + j])),
    mass_color: fm.xs.map((_, r) => mass.color_pct[first + r]),
    main_pieces: Array.from(get("coil_mass").view.indices), first, pieces,
    outlined: Array.from(get("coil_unwind_front_outline_source").data.pos),
    main_outlined: Array.from(get("coil_mass_outline").view.indices),
  }
}
"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("mass", [False, True])
def test_while_it_plays_the_positions_ahead_are_drawn_above_as_they_would_be(browser_session, tmp_path, mass) -> None:  # noqa: F811
    """Playing, the positions from the playhead to about a second ahead are drawn on the
    figure's overlay canvas (the front) and hidden from the main one: the same polygons,
    colours, rings, selection and arcs, and on the screen the same picture as when it stops
    there."""
    rec = attention_record(60)
    view = coilvis.coil(rec, animate=True, attention="mean", autoplay=False, mass=mass, mass_k=3)
    page = browser_session.open(coilvis.save(view, tmp_path / "front.html"))
    page.evaluate("() => { Bokeh.documents[0].get_model_by_name('coil_unwind_scrub').value = 20 }")  # stopped at 20
    page.page.wait_for_function(f"() => {_STATE_OF}?.progress === 20")
    page.wait_idle(0.3)
    stopped = page.evaluate(READ_FRONT)
    assert stopped["front_pos"] == [] and stopped["main_segments"] == list(range(60))
    assert stopped["main_selected"] == [20] and stopped["main_highlight"] != []
    still = _figure_shot(page)
    page.evaluate(_AS_IF_PLAYING, [20, True])  # playing at 20: a front from 20 on
    page.wait_idle(0.3)
    front = _check_front(page.evaluate(READ_FRONT), view, 20)
    if mass:  # the rings of the front's positions, hidden from the main rings
        rings = page.evaluate(READ_FRONT_MASS)
        assert rings["first"] == 20 * 4 and len(rings["front_xs"]) == 4 * len(front)
        np.testing.assert_array_equal(rings["front_xs"], rings["mass_xs"])
        np.testing.assert_array_equal(rings["front_color"], rings["mass_color"])
        hidden = set(range(20 * 4, (20 + len(front)) * 4))
        assert rings["main_pieces"] == [r for r in range(60 * 4) if r not in hidden]
        # their outlines, and their neighbours' (above every ring), on the overlay
        outlined = list(range(19, 20 + len(front) + 1))
        assert rings["outlined"] == outlined and rings["main_outlined"] == [i for i in range(60) if i not in outlined]
    differ = np.abs(_figure_shot(page) - still).max(axis=2) > 32
    assert differ.sum() < 20, (differ.sum(), front)  # a few pixels where arcs meet the front's edge
    page.evaluate(_AS_IF_PLAYING, [20, False])  # stopped again: all back on the main canvas
    page.wait_idle(0.3)
    assert page.evaluate(READ_FRONT)["main_segments"] == list(range(60))
    # and while it really plays, the front keeps up with the segments it draws
    page.page.click("text=▶ play")
    page.page.wait_for_function(f"() => {_STATE_OF}?.progress > 1.5")
    got = page.evaluate(READ_FRONT)
    assert got["playing"]
    np.testing.assert_array_equal(got["front_xs"], got["seg_xs"])
    np.testing.assert_array_equal(got["front_ys"], got["seg_ys"])
    page.page.click("text=❚❚ pause")
    page.wait_idle(0.3)
    assert page.evaluate(READ_FRONT)["front_pos"] == []
    assert page.errors == []
