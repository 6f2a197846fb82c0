"""The coil's arcs (coilvis.views.coil.arcs): drawn from the segments' anchors, bent as the geometry bends them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bokeh.models import CustomJSTransform

import coilvis
from coilvis import geometry

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from browser import browser_session  # noqa: F401  (a fixture)
    from coil_records import make_record
except ImportError:  # tests is a package
    from tests.browser import browser_session  # noqa: F401
    from tests.coil_records import make_record


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return make_record(40)


def test_arcs_are_drawn_from_the_segment_anchors(record: coilvis.Record) -> None:
    view = coilvis.coil(record, attention="mean")
    data, seg = view.links.data, view.segments.data
    assert set(data) == {"query", "key", "weight", "choice"}
    anchors = geometry.arc_curves(view.coiled, np.arange(record.seq_len), np.arange(record.seq_len), anchor="inner")
    np.testing.assert_allclose(seg["anchor_x"], anchors.x0, atol=1e-5)
    np.testing.assert_allclose(seg["anchor_y"], anchors.y0, atol=1e-5)
    glyph = view.model("coil_arcs").glyph
    for name, field, transform_name in (
        ("x0", "query", "coil_anchor_x"),
        ("y0", "query", "coil_anchor_y"),
        ("x1", "key", "coil_anchor_x"),
        ("y1", "key", "coil_anchor_y"),
        ("cx", "query", "coil_control_x"),
        ("cy", "query", "coil_control_y"),
    ):
        spec = getattr(glyph, name)
        assert spec.field == field and spec.transform is view.model(transform_name), name
        assert isinstance(spec.transform, CustomJSTransform)
    assert view.model("coil_arcs").view.filter is view.model("coil_choice_filter")
    assert view.model("coil_arc_highlight").data_source is view.links


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.xdist_group("browser")
def test_arc_curves_in_the_page_are_the_geometrys(browser_session, tmp_path: Path) -> None:  # noqa: F811
    rec = make_record(50)
    for layout in ("spiral", "circle"):
        view = coilvis.coil(rec, attention=[(0, "mean"), (1, 2)], layout=layout)
        page = browser_session.open(coilvis.save(view, tmp_path / f"arcs_{layout}.html"))
        computed = page.evaluate(
            """() => {
                const r = Bokeh.documents[0].get_model_by_name("coil_arcs")
                const out = {}
                for (const name of ["x0", "y0", "x1", "y1", "cx", "cy"]) {
                    const spec = r.glyph[name]
                    out[name] = Array.from(spec.transform.v_compute(r.data_source.data[spec.field]))
                }
                return out
            }"""
        )
        data = view.links.data
        curves = geometry.arc_curves(view.coiled, data["query"], data["key"], anchor="inner")
        assert len(computed["cx"]) == len(data["query"]) > 0
        for name in ("x0", "y0", "x1", "y1", "cx", "cy"):
            np.testing.assert_allclose(computed[name], getattr(curves, name), atol=1e-4, err_msg=f"{layout} {name}")
        assert page.errors == []
        page.close()
