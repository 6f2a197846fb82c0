"""Two saved Records compared after the fact: exact where both kept every token, top-k lower bounds elsewhere.

A Record keeps each position's top-k, not its whole distribution, so two Records
compared later get, per position (and per lens cell), the lower bounds of
:func:`coilvis.topk_bounds.topk_divergence`, which are exact where both top-k lists hold all
the mass (a Record run with ``k >= d_vocab``). The Comparison says which
(``exact``); probabilities a Record did not keep are NaN.

Example:
    >>> import numpy as np, coilvis
    >>> vocab = ["a", "b", "c"]
    >>> a = coilvis.from_logits(np.log([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]]), tokens=[0, 2], vocab=vocab, k=3)
    >>> b = coilvis.from_logits(np.log([[0.2, 0.7, 0.1], [0.1, 0.1, 0.8]]), tokens=[0, 2], vocab=vocab, k=3)
    >>> c = compare_records(a, b)
    >>> c.exact.tolist(), [round(float(v), 3) for v in c.tv]
    ([True, True], [0.5, 0.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

from coilvis.comparison import Comparison, Metric, PairLens
from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.record import Record
from coilvis.runner.pair_inputs import (
    DEFAULT_MOVERS,
    aligned,
    check_align,
    check_label,
    check_movers,
    first_difference,
    metric_spec,
    resolve_metric,
)
from coilvis.tokens import display
from coilvis.topk_bounds import topk_divergence

__all__ = ["compare_records"]

#: A top-k list holds all of its run's mass when its probabilities sum to at least this.
FULL_MASS = 1.0 - 1e-6


def _check_same_vocabulary(a: Record, b: Record) -> None:
    """Refuse records whose token ids mean different things."""
    for name, rec in (("a", a), ("b", b)):
        if rec.extra.get("token_ids") == "local":  # coilvis.from_logprobs: ids numbered per record
            raise CoilvisValueError(
                f"{name}: its server sent token texts, not ids (its ids are numbered within the record), so it "
                "cannot be compared with another record position by position"
            )
    if a.d_vocab != b.d_vocab:
        raise CoilvisValueError(
            f"b: comes from a model with {b.d_vocab} vocabulary entries, a from one with {a.d_vocab}; "
            "records of models with different tokenizers cannot be compared position by position"
        )
    for token_id in sorted(a.vocab.keys() & b.vocab.keys()):
        if a.vocab[token_id] != b.vocab[token_id]:
            raise CoilvisValueError(
                f"b: token id {token_id} is {display(b.vocab[token_id])!r} in b but {display(a.vocab[token_id])!r} in a; "
                "the records come from models with different tokenizers"
            )


def _divergences(p_ids: np.ndarray, p_probs: np.ndarray, q_ids: np.ndarray, q_probs: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "kl_ab": topk_divergence(p_ids, p_probs, q_ids, q_probs, kind="kl"),
        "kl_ba": topk_divergence(q_ids, q_probs, p_ids, p_probs, kind="kl"),
        "js": topk_divergence(p_ids, p_probs, q_ids, q_probs, kind="js"),
        "tv": topk_divergence(p_ids, p_probs, q_ids, q_probs, kind="tv"),
    }


def _covers(probs: np.ndarray, d_vocab: int) -> np.ndarray:
    """(...) bool: the top-k in the last axis holds all of the distribution."""
    return (probs.shape[-1] >= d_vocab) | (probs.astype(np.float64).sum(axis=-1) >= FULL_MASS)


def _prob_of(ids: np.ndarray, probs: np.ndarray, want: np.ndarray) -> np.ndarray:
    """(n, m) probability of ``want`` (n, m) in each row's top-k (``ids``, ``probs``: (n, k)), NaN where not kept."""
    match = want[:, :, None] == ids[:, None, :]
    found = match.any(axis=2)
    return np.where(found, (match * probs[:, None, :]).sum(axis=2), np.nan).astype(np.float32)


def _movers(a_ids: np.ndarray, a_probs: np.ndarray, b_ids: np.ndarray, b_probs: np.ndarray, n_movers: int) -> dict[str, np.ndarray]:
    """Top movers among the tokens either record kept; a probability not kept counts as 0 for the order and shows as NaN."""
    cand = np.concatenate([a_ids, b_ids], axis=1)
    pa, pb = _prob_of(a_ids, a_probs, cand), _prob_of(b_ids, b_probs, cand)
    change = np.nan_to_num(pb) - np.nan_to_num(pa)
    # a token in both lists appears twice: keep its first copy
    first = np.ones_like(cand, dtype=bool)
    first[:, a_ids.shape[1]:] = ~(cand[:, a_ids.shape[1]:, None] == a_ids[:, None, :]).any(axis=2)
    m = min(n_movers, max(a_ids.shape[1], b_ids.shape[1]))  # never more than the distinct candidates
    out: dict[str, np.ndarray] = {}
    for direction, key in (("rise", -change), ("fall", change)):
        order = np.argsort(np.where(first, key, np.inf), axis=1, kind="stable")[:, :m]
        out[f"{direction}_ids"] = np.take_along_axis(cand, order, axis=1)
        out[f"{direction}_prob_a"] = np.take_along_axis(pa, order, axis=1)
        out[f"{direction}_prob_b"] = np.take_along_axis(pb, order, axis=1)
    return out


def _record_metric(metric: Any, a: Record, b: Record) -> Metric | None:
    """A metric whose tokens are looked up in the records' vocabularies."""
    spec = metric_spec(metric)
    if spec is None:
        return None
    by_text: dict[str, list[int]] = {}
    for vocab in (a.vocab, b.vocab):
        for token_id, text in vocab.items():
            if token_id not in by_text.setdefault(text, []):
                by_text[text].append(token_id)

    def encode(text: str) -> list[int]:
        ids = by_text.get(text)
        if not ids:
            raise CoilvisValueError(
                f"metric: {text!r} is not among the tokens these records mention; give its token id instead "
                "(a record keeps the text of its inputs and top-k tokens only)"
            )
        return ids[:1]

    plus, minus, plus_text, minus_text = resolve_metric(spec, encode=encode, text_of=lambda i: a.vocab.get(i, b.vocab.get(i, f"<id {i}>")), d_vocab=a.d_vocab)
    return Metric(plus, minus, plus_text, minus_text)


def _metric_values(metric: Metric, ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """(...) the metric from top-k logits or log-probabilities ``values`` (the normaliser
    cancels in the difference), NaN where a record did not keep one of its tokens."""
    flat_ids = ids.reshape(-1, ids.shape[-1])
    flat_values = values.reshape(-1, ids.shape[-1]).astype(np.float64)

    def mean_of(side: tuple[int, ...]) -> np.ndarray:
        match = np.array(side, dtype=np.int64)[None, :, None] == flat_ids[:, None, :]  # (n, m, k)
        found = match.any(axis=2)
        picked = np.where(found, (match * flat_values[:, None, :]).sum(axis=2), np.nan)
        return picked.mean(axis=1)

    return (mean_of(metric.plus_ids) - mean_of(metric.minus_ids)).reshape(ids.shape[:-1]).astype(np.float32)


def _delta_next_logprob(a: Record, b: Record, pos_a: np.ndarray, pos_b: np.ndarray) -> np.ndarray:
    """``log p_b(t) - log p_a(t)`` for a's next token ``t``: b's probability of ``t`` from its
    own next token or its top-k, NaN where b kept neither."""
    t = a.next_ids[pos_a]
    b_logprob = (b.topk_logits[pos_b] - b.log_z[pos_b, None]).astype(np.float64)
    in_topk = b.topk_ids[pos_b] == t[:, None]
    lp_b = np.where(in_topk.any(axis=1), (in_topk * b_logprob).sum(axis=1), np.nan)
    own = b.next_ids[pos_b] == t
    lp_b = np.where(own, b.next_logprob[pos_b], lp_b)
    return np.where(t >= 0, lp_b - a.next_logprob[pos_a], np.nan).astype(np.float32)


def _pair_lens(a: Record, b: Record, pos_a: np.ndarray, pos_b: np.ndarray, metric: Metric | None) -> PairLens | None:
    """Lower bounds per lens cell, when both records have the same lens layers."""
    if a.lens is None or b.lens is None:
        return None
    if a.lens.layer_names != b.lens.layer_names:
        raise CoilvisValueError(
            f"b: its lens decodes the layers {list(b.lens.layer_names)}, a's {list(a.lens.layer_names)}; "
            "compare records whose lenses decode the same layers"
        )
    la, lb = a.lens, b.lens
    ia, pa = la.topk_ids[:, pos_a].astype(np.int64), la.topk_probs[:, pos_a]
    ib, pb = lb.topk_ids[:, pos_b].astype(np.int64), lb.topk_probs[:, pos_b]
    values = _divergences(ia, pa, ib, pb)
    exact = bool((_covers(pa, a.d_vocab) & _covers(pb, b.d_vocab)).all())
    metrics: dict[str, np.ndarray] = {}
    if metric is not None:
        with np.errstate(divide="ignore"):
            metrics = {"metric_a": _metric_values(metric, ia, np.log(pa)), "metric_b": _metric_values(metric, ib, np.log(pb))}
    return PairLens(layer_names=la.layer_names, exact=exact, **values, **metrics)


def compare_records(
    a: Record,
    b: Record,
    *,
    align: str | None = None,
    metric: Any = None,
    movers: int = DEFAULT_MOVERS,
    label_a: str | None = None,
    label_b: str | None = None,
) -> Comparison:
    """Compare two Records after the fact, from what they kept.

    Shapes: ``a`` has ``seq_len_a`` positions, ``b`` ``seq_len_b``; the comparison has
    ``n_pos`` (equal lengths, or the last ``min`` with ``align="end"``).

    Args:
        a: the reference run (clean prompt, base model).
        b: the other run.
        align: ``None`` (lengths must match) or ``"end"``.
        metric: a logit difference, ``(" Mary", " John")`` or two lists of tokens
            (strings the records mention, or ids); NaN where a record did not keep a
            token in its top-k.
        movers: top movers kept each way per position (among the tokens either record
            kept).
        label_a: a name for run a (default: its model name if the models differ, else
            ``"a"``).
        label_b: a name for run b.

    Returns:
        A :class:`~coilvis.comparison.Comparison`; ``exact`` is True where both top-k
        lists hold all of their run's mass, else its values are lower bounds.

    Raises:
        CoilvisTypeError: ``a`` or ``b`` is not a Record, or a bad argument type.
        CoilvisValueError: different vocabularies (tokenizers), different lengths
            without ``align="end"``, different lens layers, a metric token the records
            do not mention.
    """
    for name, value in (("a", a), ("b", b)):
        if not isinstance(value, Record):
            raise CoilvisTypeError(f"{name}: expected a Record, got {type(value).__name__}")
    align = check_align(align)
    movers = check_movers(movers)
    _check_same_vocabulary(a, b)
    default_a, default_b = ("a", "b") if a.model_name == b.model_name else (a.model_name or "a", b.model_name or "b")
    label_a, label_b = check_label("label_a", label_a, default_a), check_label("label_b", label_b, default_b)
    off_a, off_b, n_pos = aligned(a.seq_len, b.seq_len, align=align, describe=lambda _: _first_difference_text(a, b))
    the_metric = _record_metric(metric, a, b)
    pos_a, pos_b = np.arange(off_a, off_a + n_pos), np.arange(off_b, off_b + n_pos)
    ia, pa, ib, pb = a.topk_ids[pos_a], a.topk_probs[pos_a], b.topk_ids[pos_b], b.topk_probs[pos_b]
    metrics: dict[str, Any] = {}
    if the_metric is not None:
        metrics = {
            "metric_a": _metric_values(the_metric, ia, a.topk_logits[pos_a]),
            "metric_b": _metric_values(the_metric, ib, b.topk_logits[pos_b]),
        }
    return Comparison(
        a=a, b=b, offset_a=off_a, offset_b=off_b,
        **_divergences(ia, pa, ib, pb),
        exact=_covers(pa, a.d_vocab) & _covers(pb, b.d_vocab),
        delta_next_logprob=_delta_next_logprob(a, b, pos_a, pos_b),
        **_movers(ia, pa, ib, pb, movers),
        metric=the_metric, **metrics,
        lens=_pair_lens(a, b, pos_a, pos_b, the_metric),
        label_a=label_a, label_b=label_b,
        extra={"source": "records"},
    )


def _first_difference_text(a: Record, b: Record) -> str:
    """Where two records' token ids first differ, for an error message."""
    at = first_difference(a.token_ids, b.token_ids)
    if at >= min(a.seq_len, b.seq_len):
        return f"one is a prefix of the other; they first differ at position {at}"
    return f"they first differ at position {at}: {display(a.tokens[at])!r} in a, {display(b.tokens[at])!r} in b"
