"""Views of a Comparison: the diff coil, the diff lens, the top movers and one page linking them.

A :class:`~coilvis.comparison.Comparison` holds two runs (``a``: the clean prompt or
the base model, ``b``: the corrupted prompt or the tuned model) and what differs
between them at each compared position. Its views return
:class:`~coilvis.views.output.View` objects like every coilvis view (offline HTML,
notebook display, PNG):

* :func:`diff_coil`: one coil over the compared positions, each segment coloured by a
  divergence (``kl_ab``, ``kl_ba``, ``js``, ``tv``; bits), the metric's change
  (``metric``) or ``delta_next_logprob``; the hover shows both runs' tokens and top-k,
  the divergences, the metric of both runs and ``lower bound`` where ``exact`` is False;
  positions whose tokens differ are outlined and labelled ``a→b``.
* :func:`diff_lens`: layer x compared position of ``comparison.lens``, coloured by a
  divergence or the metric's change, both runs' top tokens in each cell.
* :func:`movers_table`: the tokens whose probability rose or fell most at a position.
* :func:`diff_page`: both prompts, the coil, the movers and the lens, linked by selection.

``coilvis.coil``, ``coilvis.lens`` and ``coilvis.page`` given a Comparison hand it to
these, with the options the caller set (:mod:`~coilvis.views.diff.dispatch`).

The statistics they colour by are the rows ``("diff_coil", name)`` and
``("diff_lens", name)`` of :data:`coilvis.options.STATS`; signed changes use a
red-blue palette centred on 0 (red = fell).

Named models (``view.model(name)`` in Python, ``Bokeh.documents[0].get_model_by_name``
in the page)
---------------------------------------------------------------------------------

* Diff coil: ``diff_coil_figure``; ``diff_coil_segments`` (patches) over
  ``diff_coil_source`` (one row per compared position: see
  :func:`coilvis.views.diff.coil.segment_columns`); ``diff_coil_vocab_source`` (the
  token labels the top-k columns index); ``diff_coil_runs`` (the runs' names and the
  metric's label, for the hover); ``diff_coil_differs`` (the outline of positions whose
  tokens differ; its ``diff_coil_differs_filter`` lists them); ``diff_coil_hover``,
  ``diff_coil_text_format`` (the hover's text formatter), ``diff_coil_tap``,
  ``diff_coil_color_mapper``, ``diff_coil_color_bar``, ``diff_coil_labels`` over
  ``diff_coil_label_source``, ``diff_coil_bands``, ``diff_coil_markers``: the coil's
  parts (:mod:`coilvis.views.coil`) with the ``diff_`` prefix.
* Diff lens: ``diff_lens_figure``; ``diff_lens_cells`` (one row per cell: see
  :func:`coilvis.views.diff.lens.cell_columns`), drawn by ``diff_lens_cell_renderer``;
  ``diff_lens_strings`` (the texts the cells index); ``diff_lens_text_a`` and
  ``diff_lens_text_b`` (each run's top token); ``diff_lens_match_renderer`` (the
  outline of cells whose top tokens differ); ``diff_lens_highlight`` (column ``pos``:
  the selected position, outlined by ``diff_lens_highlight_renderer``);
  ``diff_lens_hover``, ``diff_lens_tap``, ``diff_lens_color_mapper``,
  ``diff_lens_color_bar``, ``diff_lens_input_axis``, ``diff_lens_layer_axis``,
  ``diff_lens_x_range``, ``diff_lens_y_range``.
* Movers: ``diff_movers`` (the column), ``diff_movers_header``, ``diff_movers_table``
  over ``diff_movers_source`` (every position's rows), ``diff_movers_filter`` (the
  selected position's rows).
* Page: ``diff_root``, ``diff_summary``, ``diff_main`` (the coil and the movers),
  ``diff_prompt_a`` and ``diff_prompt_b`` over ``diff_prompt_a_source`` and
  ``diff_prompt_b_source``, and the scripts ``diff_select_coil``, ``diff_select_lens``,
  ``diff_select_prompt_a``, ``diff_select_prompt_b``.

Token text reaches a page only as data (escaped by Bokeh, drawn on the canvas), never
in HTML templates or JavaScript source.

The package: :mod:`~coilvis.views.diff.data` (checks, per-position values, scales,
the token table), :mod:`~coilvis.views.diff.coil`, :mod:`~coilvis.views.diff.lens`,
:mod:`~coilvis.views.diff.movers`, :mod:`~coilvis.views.diff.prompts` (both prompts
as text), :mod:`~coilvis.views.diff.page` and :mod:`~coilvis.views.diff.dispatch`.
"""

from __future__ import annotations

from coilvis.views.diff.coil import DiffCoilView, diff_coil
from coilvis.views.diff.lens import DiffLensFigure, diff_lens, diff_lens_figure
from coilvis.views.diff.movers import movers_table
from coilvis.views.diff.page import diff_page

__all__ = ["DiffCoilView", "DiffLensFigure", "diff_coil", "diff_lens", "diff_lens_figure", "diff_page", "movers_table"]
