"""The Comparison: two runs of a model side by side, position by position, as plain numpy.

A :class:`Comparison` holds two :class:`~coilvis.record.Record` (``a``, say the clean
prompt or the base model, and ``b``, the corrupted prompt or the tuned model) and what
differs between them at each compared position: KL both ways, Jensen-Shannon, total
variation, the change in the actual next token's log-probability, the tokens whose
probability rose or fell most, and optionally a logit-difference metric and the same
numbers through the logit lens (layer x position).

Compared positions: position ``i`` of the comparison is position ``offset_a + i`` of
``a`` and ``offset_b + i`` of ``b`` (both offsets are 0 unless the runs were aligned at
their ends, ``align="end"``).

Exactness: :func:`coilvis.compare` computes every divergence over the full vocabulary
while both runs' distributions exist (``exact`` is True everywhere). Two Records
compared later keep only their top-k: there ``exact`` is False where either run's top-k
does not hold all of its mass, and the values are lower bounds (see
:func:`coilvis.topk_bounds.topk_divergence`); mover probabilities a run did not keep are NaN.

Views read a Comparison like a Record (:func:`coilvis.coil`, :func:`coilvis.lens`,
:func:`coilvis.page`); it saves to and loads from one versioned file
(:meth:`Comparison.save`, :meth:`Comparison.load`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coilvis._version import __version__
from coilvis.comparison_format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    RECORD_MEMBERS,
    ComparisonContents,
    read_comparison_file,
    record_file_bytes,
    write_comparison_file,
)
from coilvis.errors import CoilvisFileNotFoundError, CoilvisTypeError, CoilvisValueError, check_int
from coilvis.files import as_path, atomic_writer, check_output_path
from coilvis.options import LN2
from coilvis.record import Record
from coilvis.record_format import Contents, Source, encode_meta

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["DIVERGENCE_FIELDS", "MOVER_FIELDS", "Comparison", "Metric", "PairLens"]

#: The divergences a comparison keeps per position (and per lens cell), in nats (TV in [0, 1]).
DIVERGENCE_FIELDS = ("kl_ab", "kl_ba", "js", "tv")
#: The top movers' arrays, each (n_pos, n_movers).
MOVER_FIELDS = ("rise_ids", "rise_prob_a", "rise_prob_b", "fall_ids", "fall_prob_a", "fall_prob_b")


def _float(array: Any, name: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(array, dtype=np.float32))
    if out.shape != shape:
        raise CoilvisValueError(f"{name}: expected shape {shape}, got {out.shape}")
    return out


@dataclass(frozen=True, eq=False)
class Metric:
    """A logit difference: the mean logit of the ``plus`` tokens minus that of the ``minus`` tokens.

    With one token each (``(" Mary", " John")``) it is the logit difference researchers
    use to see where an answer forms (it does not depend on the softmax normaliser).

    Attributes:
        plus_ids: token ids whose mean logit counts positively.
        minus_ids: token ids whose mean logit counts negatively.
        plus_text: their raw texts.
        minus_text: their raw texts.
    """

    plus_ids: tuple[int, ...]
    minus_ids: tuple[int, ...]
    plus_text: tuple[str, ...]
    minus_text: tuple[str, ...]

    def __post_init__(self) -> None:
        for side in ("plus", "minus"):
            ids = tuple(int(i) for i in getattr(self, f"{side}_ids"))
            texts = tuple(str(t) for t in getattr(self, f"{side}_text"))
            if not ids or len(ids) != len(texts):
                raise CoilvisValueError(f"metric: the {side} side needs at least one token, with one text per id")
            object.__setattr__(self, f"{side}_ids", ids)
            object.__setattr__(self, f"{side}_text", texts)

    @property
    def label(self) -> str:
        """``'" Mary" − " John"'`` (raw texts quoted with ``repr``, lists in brackets)."""

        def side(texts: tuple[str, ...]) -> str:
            quoted = [repr(t) for t in texts]
            return quoted[0] if len(quoted) == 1 else "mean[" + ", ".join(quoted) + "]"

        return f"{side(self.plus_text)} \u2212 {side(self.minus_text)}"


@dataclass(frozen=True, eq=False)
class PairLens:
    """The comparison through the logit lens: one value per decoded layer and compared position.

    Attributes:
        layer_names: (n_rows,) names of the decoded residual streams (as in
            :class:`~coilvis.record.LensStats`); the last row is the models' output.
        kl_ab: (n_rows, n_pos) float32 KL(a || b) per cell, nats.
        kl_ba: (n_rows, n_pos) float32 KL(b || a), nats.
        js: (n_rows, n_pos) float32 Jensen-Shannon divergence, nats, in [0, ln 2].
        tv: (n_rows, n_pos) float32 total variation distance, in [0, 1].
        exact: whether the values are exact (full vocabulary) or top-k lower bounds.
        metric_a: (n_rows, n_pos) float32 the metric of a's decoded rows, or None.
        metric_b: (n_rows, n_pos) float32 the metric of b's, or None.
    """

    layer_names: tuple[str, ...]
    kl_ab: np.ndarray
    kl_ba: np.ndarray
    js: np.ndarray
    tv: np.ndarray
    exact: bool = True
    metric_a: np.ndarray | None = None
    metric_b: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_names", tuple(str(s) for s in self.layer_names))
        shape = np.shape(self.kl_ab)
        if len(shape) != 2 or shape[0] != len(self.layer_names):
            raise CoilvisValueError(f"lens.kl_ab: expected shape ({len(self.layer_names)}, n_pos), got {shape}")
        for name in DIVERGENCE_FIELDS:
            object.__setattr__(self, name, _float(getattr(self, name), f"lens.{name}", shape))
        if (self.metric_a is None) != (self.metric_b is None):
            raise CoilvisValueError("lens.metric_a, lens.metric_b: give both or neither")
        for name in ("metric_a", "metric_b"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _float(getattr(self, name), f"lens.{name}", shape))
        object.__setattr__(self, "exact", bool(self.exact))

    @property
    def n_rows(self) -> int:
        """Number of decoded layers."""
        return int(self.kl_ab.shape[0])


@dataclass(frozen=True, eq=False)
class Comparison:
    """Two runs compared position by position (see the module docstring).

    Attributes:
        a: the first run (the reference: clean prompt, base model).
        b: the second run (corrupted prompt, tuned model).
        offset_a: compared position ``i`` is position ``offset_a + i`` of ``a``.
        offset_b: ... and position ``offset_b + i`` of ``b``.
        kl_ab: (n_pos,) float32 KL(a || b) of the next-token distributions, nats.
        kl_ba: (n_pos,) float32 KL(b || a), nats.
        js: (n_pos,) float32 Jensen-Shannon divergence, nats, in [0, ln 2].
        tv: (n_pos,) float32 total variation distance, in [0, 1].
        exact: (n_pos,) bool whether a position's values are exact (full vocabulary)
            or top-k lower bounds.
        delta_next_logprob: (n_pos,) float32 ``log p_b(t) - log p_a(t)`` for a's actual
            next token ``t`` (NaN where a has no next token or b never kept ``t``).
        rise_ids: (n_pos, n_movers) int64 the tokens whose probability rose most from a
            to b, largest rise first.
        rise_prob_a: (n_pos, n_movers) float32 their probability under a (NaN: unknown).
        rise_prob_b: (n_pos, n_movers) float32 ... under b.
        fall_ids: (n_pos, n_movers) int64 the tokens whose probability fell most.
        fall_prob_a: (n_pos, n_movers) float32 their probability under a.
        fall_prob_b: (n_pos, n_movers) float32 ... under b.
        vocab: token id -> raw text for the movers and the metric's tokens.
        metric: the logit difference evaluated on both runs, or None.
        metric_a: (n_pos,) float32 the metric under a, or None.
        metric_b: (n_pos,) float32 the metric under b, or None.
        lens: the comparison through the logit lens, or None.
        label_a: a short name for run a (``"clean"``, a model name).
        label_b: a short name for run b.
        extra: JSON-serialisable metadata.
    """

    a: Record
    b: Record
    offset_a: int
    offset_b: int
    kl_ab: np.ndarray
    kl_ba: np.ndarray
    js: np.ndarray
    tv: np.ndarray
    exact: np.ndarray
    delta_next_logprob: np.ndarray
    rise_ids: np.ndarray
    rise_prob_a: np.ndarray
    rise_prob_b: np.ndarray
    fall_ids: np.ndarray
    fall_prob_a: np.ndarray
    fall_prob_b: np.ndarray
    vocab: dict[int, str] = field(default_factory=dict)
    metric: Metric | None = None
    metric_a: np.ndarray | None = None
    metric_b: np.ndarray | None = None
    lens: PairLens | None = None
    label_a: str = "a"
    label_b: str = "b"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("a", "b"):
            if not isinstance(getattr(self, name), Record):
                raise CoilvisTypeError(f"{name}: expected a Record, got {type(getattr(self, name)).__name__}")
        n_pos = np.shape(self.kl_ab)[0] if np.ndim(self.kl_ab) == 1 else -1
        if n_pos < 1:
            raise CoilvisValueError(f"kl_ab: expected shape (n_pos,) with n_pos >= 1, got {np.shape(self.kl_ab)}")
        self._check_offsets(n_pos)
        for name in (*DIVERGENCE_FIELDS, "delta_next_logprob"):
            object.__setattr__(self, name, _float(getattr(self, name), name, (n_pos,)))
        exact = np.ascontiguousarray(np.asarray(self.exact, dtype=bool))
        if exact.shape != (n_pos,):
            raise CoilvisValueError(f"exact: expected shape {(n_pos,)}, got {exact.shape}")
        object.__setattr__(self, "exact", exact)
        self._check_movers(n_pos)
        self._check_metric(n_pos)
        if self.lens is not None and self.lens.kl_ab.shape[1] != n_pos:
            raise CoilvisValueError(f"lens: has {self.lens.kl_ab.shape[1]} positions, the comparison {n_pos}")
        object.__setattr__(self, "vocab", {int(k): str(v) for k, v in dict(self.vocab).items()})
        for name in ("label_a", "label_b"):
            if not isinstance(getattr(self, name), str):
                raise CoilvisTypeError(f"{name}: expected a str, got {type(getattr(self, name)).__name__}")
        if self.a.d_vocab != self.b.d_vocab:
            raise CoilvisValueError(
                f"b: its model has a vocabulary of {self.b.d_vocab} tokens, a's {self.a.d_vocab}; runs of "
                "models with different vocabularies cannot be compared token by token"
            )

    def _check_offsets(self, n_pos: int) -> None:
        for name, record in (("offset_a", self.a), ("offset_b", self.b)):
            offset = check_int(name, getattr(self, name), minimum=0)
            object.__setattr__(self, name, offset)
            if offset + n_pos > record.seq_len:
                raise CoilvisValueError(
                    f"{name}: {offset} + {n_pos} compared positions pass the end of its record ({record.seq_len} positions)"
                )

    def _check_movers(self, n_pos: int) -> None:
        ids = np.ascontiguousarray(np.asarray(self.rise_ids, dtype=np.int64))
        if ids.ndim != 2 or ids.shape[0] != n_pos:
            raise CoilvisValueError(f"rise_ids: expected shape ({n_pos}, n_movers), got {ids.shape}")
        shape = ids.shape
        object.__setattr__(self, "rise_ids", ids)
        fall = np.ascontiguousarray(np.asarray(self.fall_ids, dtype=np.int64))
        if fall.shape != shape:
            raise CoilvisValueError(f"fall_ids: expected shape {shape}, got {fall.shape}")
        object.__setattr__(self, "fall_ids", fall)
        for name in ("rise_prob_a", "rise_prob_b", "fall_prob_a", "fall_prob_b"):
            object.__setattr__(self, name, _float(getattr(self, name), name, shape))

    def _check_metric(self, n_pos: int) -> None:
        given = [self.metric_a is not None, self.metric_b is not None]
        if self.metric is None and any(given):
            raise CoilvisValueError("metric: metric_a/metric_b given without the metric they evaluate")
        if self.metric is not None:
            if not all(given):
                raise CoilvisValueError("metric_a, metric_b: a comparison with a metric needs both")
            for name in ("metric_a", "metric_b"):
                object.__setattr__(self, name, _float(getattr(self, name), name, (n_pos,)))

    # ------------------------------------------------------------------ basics
    @property
    def n_pos(self) -> int:
        """Number of compared positions."""
        return int(self.kl_ab.shape[0])

    @property
    def n_movers(self) -> int:
        """Top movers kept each way per position."""
        return int(self.rise_ids.shape[1])

    @property
    def positions_a(self) -> np.ndarray:
        """(n_pos,) int64 the positions of ``a`` compared."""
        return np.arange(self.offset_a, self.offset_a + self.n_pos, dtype=np.int64)

    @property
    def positions_b(self) -> np.ndarray:
        """(n_pos,) int64 the positions of ``b`` compared."""
        return np.arange(self.offset_b, self.offset_b + self.n_pos, dtype=np.int64)

    @property
    def token_ids_a(self) -> np.ndarray:
        """(n_pos,) int64 a's input tokens at the compared positions."""
        return self.a.token_ids[self.positions_a]

    @property
    def token_ids_b(self) -> np.ndarray:
        """(n_pos,) int64 b's input tokens at the compared positions."""
        return self.b.token_ids[self.positions_b]

    @property
    def differs(self) -> np.ndarray:
        """(n_pos,) bool where the two runs' input tokens differ."""
        return self.token_ids_a != self.token_ids_b

    @property
    def metric_change(self) -> np.ndarray | None:
        """(n_pos,) float32 ``metric_b - metric_a``, or None without a metric."""
        if self.metric_a is None or self.metric_b is None:
            return None
        return self.metric_b - self.metric_a

    def divergence(self, name: str, *, bits: bool = False) -> np.ndarray:
        """(n_pos,) one divergence by name (``"kl_ab"``, ``"kl_ba"``, ``"js"``, ``"tv"``), in
        nats, or in bits with ``bits=True`` (TV has no unit and is returned as is)."""
        if name not in DIVERGENCE_FIELDS:
            raise CoilvisValueError(f"name: expected one of {list(DIVERGENCE_FIELDS)}, got {name!r}")
        values = getattr(self, name)
        return (values / LN2).astype(np.float32) if bits and name != "tv" else values

    def token_text(self, token_id: int) -> str:
        """Raw text of a token id, from the comparison's vocabulary or either record's."""
        token_id = check_int("token_id", token_id)
        for vocab in (self.vocab, self.a.vocab, self.b.vocab):
            if token_id in vocab:
                return vocab[token_id]
        return f"<id {token_id}>"

    def check_pos(self, pos: int) -> int:
        """A compared position in ``[0, n_pos)`` (negative counts from the end)."""
        pos = check_int("pos", pos)
        if not -self.n_pos <= pos < self.n_pos:
            raise CoilvisValueError(f"pos: {pos} is outside the {self.n_pos} compared positions")
        return pos % self.n_pos

    # ------------------------------------------------------------------ tables
    def summary(self) -> pd.DataFrame:
        """One row per compared position: the tokens, the divergences (bits; TV as is), the
        change in a's next token's log-probability, the metric, and whether it is exact."""
        from coilvis.comparison_frames import summary_frame

        return summary_frame(self)

    def movers(self, pos: int = -1) -> pd.DataFrame:
        """The tokens whose probability rose or fell most at a compared position.

        Args:
            pos: compared position (negative counts from the end).

        Returns:
            DataFrame with columns ``direction`` (``"rise"``/``"fall"``), ``token_id``,
            ``token``, ``prob_a``, ``prob_b``, ``change`` (``prob_b - prob_a``), rises first,
            each by the size of its change.
        """
        from coilvis.comparison_frames import movers_frame

        return movers_frame(self, self.check_pos(pos))

    # ------------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the comparison, both runs included, to one file (see :mod:`coilvis.comparison_format`).

        Like :meth:`Record.save <coilvis.record.Record.save>`: atomic (a crash never
        leaves a half-written file over a good one), missing folders created, the same
        comparison always the same bytes, nothing pickled.

        Args:
            path: the file to write; ``.coilcmp`` by convention (any name works).

        Returns:
            The path written.

        Raises:
            CoilvisTypeError: ``path`` is not a str or path; an ``extra`` (the
                comparison's or a record's) is not JSON-serialisable.
            CoilvisValueError: ``path`` is a folder, or lies below a file; a token id
                (of ``vocab``, the movers or the metric) lies outside ``[0, d_vocab)``.
            OSError: the file cannot be written (the error names ``path``).
        """
        target = check_output_path(path, name="path")
        self._check_token_ids()
        meta_json = encode_meta(self._meta())
        records = (
            record_file_bytes(encode_meta(self.a._meta()), self.a._arrays()),
            record_file_bytes(encode_meta(self.b._meta()), self.b._arrays()),
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(target) as handle:
            write_comparison_file(handle, meta_json, records, self._arrays())
        return target

    def _check_token_ids(self) -> None:
        """Refuse to save a token id that :meth:`load` would refuse to read."""
        d_vocab = self.a.d_vocab
        groups = [("vocab", np.array(sorted(self.vocab), dtype=np.int64)), ("rise_ids", self.rise_ids), ("fall_ids", self.fall_ids)]
        if self.metric is not None:
            groups.append(("metric", np.array(self.metric.plus_ids + self.metric.minus_ids, dtype=np.int64)))
        for name, ids in groups:
            bad = ids[(ids < 0) | (ids >= d_vocab)]
            if bad.size:
                raise CoilvisValueError(f"{name}: holds the token id {int(bad[0])}, outside the vocabulary [0, {d_vocab}); it cannot be saved")

    def _meta(self) -> dict[str, Any]:
        """``meta.json`` of the saved file."""
        scalars: dict[str, Any] = {
            "n_pos": self.n_pos,
            "offset_a": self.offset_a,
            "offset_b": self.offset_b,
            "label_a": self.label_a,
            "label_b": self.label_b,
            "extra": self.extra,
        }
        strings: dict[str, Any] = {"vocab_text": [self.vocab[i] for i in sorted(self.vocab)]}
        if self.metric is not None:
            scalars["metric"] = {"plus_ids": list(self.metric.plus_ids), "minus_ids": list(self.metric.minus_ids)}
            strings["metric_plus"], strings["metric_minus"] = list(self.metric.plus_text), list(self.metric.minus_text)
        if self.lens is not None:
            scalars["lens"] = {"exact": self.lens.exact, "metric": self.lens.metric_a is not None}
            strings["lens_layer_names"] = list(self.lens.layer_names)
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "coilvis_version": __version__, "scalars": scalars, "strings": strings}

    def _arrays(self) -> dict[str, np.ndarray]:
        """The saved arrays, by member name."""
        arrays = {name: getattr(self, name) for name in (*DIVERGENCE_FIELDS, "delta_next_logprob", *MOVER_FIELDS)}
        arrays["exact"] = self.exact.astype(np.uint8)
        arrays["vocab_ids"] = np.array(sorted(self.vocab), dtype=np.int64)
        if self.metric_a is not None and self.metric_b is not None:
            arrays["metric_a"], arrays["metric_b"] = self.metric_a, self.metric_b
        if self.lens is not None:
            for name in DIVERGENCE_FIELDS:
                arrays[f"lens.{name}"] = getattr(self.lens, name)
            if self.lens.metric_a is not None and self.lens.metric_b is not None:
                arrays["lens.metric_a"], arrays["lens.metric_b"] = self.lens.metric_a, self.lens.metric_b
        return arrays

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Comparison:
        """Read a comparison written by :meth:`save`, checking everything in it.

        Both records are read by the record reader, with all of its checks; a damaged
        or hostile file fails before any large array is read.

        Raises:
            CoilvisTypeError: ``path`` is not a str or path.
            CoilvisValueError: ``path`` is a folder.
            CoilvisFileNotFoundError: no file at ``path`` (also a ``FileNotFoundError``).
            RecordFormatError: the file is not a coilvis comparison, is damaged or
                inconsistent (in itself or in a record it holds), or comes from a newer
                format version.
        """
        source = as_path(path, name="path")
        if source.is_dir():
            raise CoilvisValueError(f"path: {str(source)!r} is a folder, expected a comparison file")
        if not source.exists():
            raise CoilvisFileNotFoundError(f"path: no comparison file at {source}")
        contents = read_comparison_file(source)
        a, b = (_record_of(part, Source(f"{source} (member {name!r})")) for part, name in zip((contents.a, contents.b), RECORD_MEMBERS))
        try:
            return cls._from_contents(contents, a, b)
        except (CoilvisValueError, CoilvisTypeError) as exc:
            raise Source(source, kind="comparison").bad(str(exc)) from exc

    @classmethod
    def _from_contents(cls, contents: ComparisonContents, a: Record, b: Record) -> Comparison:
        scalars, strings, arrays = contents.meta["scalars"], contents.meta["strings"], contents.arrays
        metric = None
        if "metric" in scalars:
            ids = scalars["metric"]
            metric = Metric(tuple(ids["plus_ids"]), tuple(ids["minus_ids"]), tuple(strings["metric_plus"]), tuple(strings["metric_minus"]))
        lens = None
        if "lens" in scalars:
            lens = PairLens(
                layer_names=tuple(strings["lens_layer_names"]),
                **{name: arrays[f"lens.{name}"] for name in DIVERGENCE_FIELDS},
                exact=scalars["lens"]["exact"],
                metric_a=arrays.get("lens.metric_a"),
                metric_b=arrays.get("lens.metric_b"),
            )
        return cls(
            a=a,
            b=b,
            offset_a=scalars["offset_a"],
            offset_b=scalars["offset_b"],
            **{name: arrays[name] for name in (*DIVERGENCE_FIELDS, "delta_next_logprob", *MOVER_FIELDS)},
            exact=arrays["exact"].astype(bool),
            vocab=dict(zip(arrays["vocab_ids"].tolist(), strings["vocab_text"])),
            metric=metric,
            metric_a=arrays.get("metric_a"),
            metric_b=arrays.get("metric_b"),
            lens=lens,
            label_a=scalars["label_a"],
            label_b=scalars["label_b"],
            extra=dict(scalars.get("extra") or {}),
        )

    def __repr__(self) -> str:
        parts = [f"a={self.a.model_name or self.label_a!r}"]
        if self.b.model_name != self.a.model_name:
            parts.append(f"b={self.b.model_name!r}")
        parts.append(f"n_pos={self.n_pos}")
        if self.metric is not None:
            parts.append(f"metric={self.metric.label}")
        if self.lens is not None:
            parts.append(f"lens={self.lens.n_rows} layers")
        if not bool(self.exact.all()):
            parts.append(f"lower bound at {int((~self.exact).sum())} positions")
        return "Comparison(" + ", ".join(parts) + ")"


def _record_of(contents: Contents, src: Source) -> Record:
    """A Record from a checked record file; an inconsistency in it names the file (and member)."""
    try:
        return Record._from_contents(contents)
    except (CoilvisValueError, CoilvisTypeError) as exc:
        raise src.bad(str(exc)) from exc
