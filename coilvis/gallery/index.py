"""The gallery's index page: one card per example (with its sunburst, if any), every text escaped, links relative."""

from __future__ import annotations

import contextlib
import html
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path

from coilvis.gallery.prompts import Example, _parse_entries, _read_prompts, default_prompts_path
from coilvis.gallery.results import ExampleResult
from coilvis.tokens import display_lines

__all__ = ["render_index"]

_INDEX_CSS = """
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; background: #f6f6f4; color: #1d1d1f; }
header { padding: 28px 32px 8px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 4px 0; color: #555; max-width: 60em; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 20px; padding: 20px 32px 40px; }
.card { background: #fff; border: 1px solid #e2e2dc; border-radius: 10px; overflow: hidden; display: flex; flex-direction: column; }
.card.failed { border-color: #d33; }
.thumb { display: block; aspect-ratio: 1 / 1; background: #eee; }
.thumb img { width: 100%; height: 100%; object-fit: contain; display: block; background: #fff; }
.thumb .none { display: flex; align-items: center; justify-content: center; height: 100%; color: #888; font-size: 13px; }
.body { padding: 12px 14px 14px; }
.card h2 { font-size: 16px; margin: 0 0 6px; }
.card h2 a { color: inherit; }
.look { margin: 0 0 8px; }
.prompt { font: 12px/1.35 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; overflow-wrap: anywhere;
          background: #f3f3ef; border-radius: 6px; padding: 6px 8px; margin: 0 0 6px; max-height: 7.5em; overflow: hidden; }
.meta { color: #777; font-size: 12px; }
.error { color: #b00; font-size: 13px; white-space: pre-wrap; overflow-wrap: anywhere; }
.burst { display: flex; gap: 10px; align-items: center; margin: 0 0 8px; padding: 6px; border-radius: 6px; background: #f3f3ef;
         color: inherit; text-decoration: none; font-size: 13px; }
.burst:hover { background: #e9e9e3; }
.burst img, .burst .none { flex: none; width: 88px; height: 88px; object-fit: contain; background: #fff; border-radius: 4px; }
.burst .none { display: flex; align-items: center; justify-content: center; color: #888; font-size: 11px; }
.badge { display: inline-block; font-size: 11px; padding: 1px 6px; border-radius: 8px; background: #d33; color: #fff; margin-left: 6px; vertical-align: middle; }
"""

_PROMPT_PREVIEW_CHARS = 240


def _href(path: Path, out_dir: Path) -> str:
    rel = path.relative_to(out_dir).as_posix()
    return urllib.parse.quote(rel)


def _shown(text: str) -> str:
    """Untrusted text as HTML: control, format and bidi characters, NUL and surrogates
    made visible as the views show them (:func:`coilvis.tokens.display_lines`), then
    HTML-escaped."""
    return html.escape(display_lines(text))


def _card(res: ExampleResult, example: Example | None, out_dir: Path) -> str:
    esc = html.escape
    failed = res.status == "failed"
    page_href = _href(res.page, out_dir) if res.page is not None and not failed else None
    if res.thumbnail is not None and not failed:
        pic = f'<img src="{esc(_href(res.thumbnail, out_dir))}" alt="{_shown("coil of " + res.title)}">'
    else:
        pic = f'<span class="none">{"build failed" if failed else "no thumbnail"}</span>'
    thumb = f'<a class="thumb" href="{esc(page_href)}">{pic}</a>' if page_href else f'<div class="thumb">{pic}</div>'
    title = _shown(res.title)
    title_html = f'<a href="{esc(page_href)}">{title}</a>' if page_href else title
    if failed:
        title_html += '<span class="badge">failed</span>'
    parts = [f'<article class="card{" failed" if failed else ""}" id="{_shown(res.name)}">', thumb, '<div class="body">', f"<h2>{title_html}</h2>"]
    if example is not None:
        parts.append(f'<p class="look">{_shown(example.look_for)}</p>')
    if page_href and res.sunburst_caption is not None:
        parts.append(_sunburst_link(res, page_href, out_dir))
    if example is not None:
        preview = example.prompt if len(example.prompt) <= _PROMPT_PREVIEW_CHARS else example.prompt[:_PROMPT_PREVIEW_CHARS] + "\u2026"
        parts.append(f'<pre class="prompt">{_shown(preview)}</pre>')
    meta = [res.name]
    if res.seq_len is not None:
        meta.append(f"{res.seq_len} tokens")
    if res.status == "skipped" and res.page is None:
        meta.append("not built yet")
    meta_txt = " \u00b7 ".join(meta)
    parts.append(f'<div class="meta">{_shown(meta_txt)}</div>')
    if failed and res.error:
        parts.append(f'<div class="error">{_shown(res.error)}</div>')
    parts.append("</div></article>")
    return "\n".join(parts)


def _sunburst_link(res: ExampleResult, page_href: str, out_dir: Path) -> str:
    """The card's sunburst: its thumbnail and caption, linking the example's page (the sunburst is below its lens)."""
    esc = html.escape
    if res.sunburst_thumbnail is not None:
        pic = f'<img src="{esc(_href(res.sunburst_thumbnail, out_dir))}" alt="{_shown("continuation sunburst of " + res.title)}">'
    else:
        pic = '<span class="none">no thumbnail</span>'
    return (
        f'<a class="burst" href="{esc(page_href)}">{pic}'
        f"<span><b>Where the mass goes next</b> (sunburst, below the lens): {_shown(res.sunburst_caption or '')}</span></a>"
    )


def render_index(
    results: Sequence[ExampleResult],
    *,
    out_dir: Path,
    model_label: str = "",
    examples: Mapping[str, Example] | None = None,
    prompts_path: Path | None = None,
) -> str:
    """The index page: one card per example (thumbnail, title, caption, prompt, link; an
    example with a continuation sunburst also its thumbnail, caption and link).

    Every string from the prompts file or a record is shown as the views show text
    (:func:`coilvis.tokens.display_lines`: NUL, bidi controls, zero-width characters and
    lone surrogates become visible escapes, line breaks stay) and escaped with
    :func:`html.escape`; thumbnails and pages are linked by relative paths, so the
    folder can be moved.

    Args:
        results: one result per example, in display order.
        out_dir: the gallery folder (links are relative to it).
        model_label: the model's name, shown in the header.
        examples: the examples by name, for captions and prompts (default: read from
            ``prompts_path``).
        prompts_path: the prompts file (default :func:`default_prompts_path`), used when
            ``examples`` is not given.

    Returns:
        The standalone HTML page (no scripts, no external resources).
    """
    from coilvis import __version__

    if examples is None:
        examples = {}
        with contextlib.suppress(Exception):
            examples = {e.name: e for e in _parse_entries(_read_prompts(prompts_path or default_prompts_path())) if isinstance(e, Example)}
    esc = html.escape
    n_failed = sum(r.status == "failed" for r in results)
    cards = "\n".join(_card(r, examples.get(r.name), out_dir) for r in results)
    status = f"{len(results)} examples" + (f", {n_failed} failed" if n_failed else "")
    model_txt = f" with {display_lines(model_label)}" if model_label else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="coilvis {esc(__version__)}">
<title>coilvis gallery</title>
<style>{_INDEX_CSS}</style>
</head>
<body>
<header>
<h1>coilvis gallery</h1>
<p>Example prompts drawn{esc(model_txt)}: each card opens a page with the coil (press play to unwind it; it slows down where the model is unsure), the logit lens and the top-k table; some also show a sunburst of the model's likely continuations (ring d: the d-th token after the prompt; angle: how much of the probability mass that continuation holds). {esc(status)}.</p>
</header>
<main>
{cards}
</main>
</body>
</html>
"""
