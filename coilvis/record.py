"""The Record: what a model believed at every position of one prompt, as plain numpy.

A :class:`Record` is the only thing coilvis views read. It holds no torch tensors and
no model, so a Record computed on a GPU cluster can be saved, copied and drawn on a
laptop, and a gallery can be re-rendered without re-running the model.

File format (version 2)
-----------------------
``Record.save(path)`` writes one zip archive (numpy ``.npz`` layout, compressed) with:

* ``meta.json``: a UTF-8 JSON object ``{"format": "coilvis.record", "version": 2,
  "coilvis_version": ..., "scalars": {...}, "strings": {...}}``. ``strings`` holds the
  input tokens, the vocabulary strings (``vocab_text``, one per entry of the
  ``vocab_ids`` array) and the layer names of the lens; ``scalars`` holds ``d_vocab``,
  ``model_name``, ``prompt``, attention sizes and free-form ``extra`` metadata.
* one ``.npy`` member per numeric array, named by its field (``token_ids``,
  ``topk_ids``, ``attention.weight``, ``lens.entropy``, ...); the table of members,
  their dtypes and shapes is :data:`coilvis.record_format.MEMBERS_V2`. Ranks are
  1-based (1 = the top token; -1 where there is no next token); version 1 files
  counted them from 0 and are converted when read.

The same record gives the same bytes whenever and wherever it is saved. Nothing in
the file is pickled. ``Record.load`` trusts nothing in it: every array's declared
dtype and shape is checked against ``meta.json`` before the array is read, token ids
against ``[0, d_vocab)``, and so on (see :mod:`coilvis.record_format`); a file written
by a newer coilvis (higher ``version``) or a damaged file raises
:class:`coilvis.errors.RecordFormatError` naming the path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coilvis._version import __version__
from coilvis.errors import CoilvisFileNotFoundError, CoilvisTypeError, CoilvisValueError, RecordFormatError, check_int
from coilvis.files import as_path, atomic_writer, check_output_path
from coilvis.record_format import FORMAT_VERSION, Contents, encode_meta, read_record_file, write_record_file
from coilvis.options import DEFAULT_K, LN2, check_k

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["AttentionLinks", "LensStats", "Record", "FORMAT_VERSION", "HEAD_MEAN", "HEAD_MAX", "next_ids_of"]

def next_ids_of(token_ids: Any) -> np.ndarray:
    """(seq_len,) int64 the token that came next at each position, -1 at the last one.

    Position ``i`` predicts the token at ``i + 1``; the last position's next token is
    unknown.

    >>> next_ids_of([5, 7, 9]).tolist()
    [7, 9, -1]
    """
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    return np.append(ids[1:], -1)


#: ``AttentionLinks.head`` value of links pruned from the mean over a layer's heads.
HEAD_MEAN = -1
#: ``AttentionLinks.head`` value of links pruned from the max over a layer's heads.
HEAD_MAX = -2



def _as(array: Any, dtype: Any, name: str, ndim: int) -> np.ndarray:
    out = np.ascontiguousarray(np.asarray(array), dtype=dtype)
    if out.ndim != ndim:
        raise CoilvisValueError(f"{name}: expected {ndim} dimensions, got shape {out.shape}")
    return out


def _check_bits(bits: Any) -> bool:
    if not isinstance(bits, (bool, np.bool_)):
        raise CoilvisTypeError(f"bits: expected True or False, got {type(bits).__name__}")
    return bool(bits)


@dataclass(frozen=True, eq=False)
class AttentionLinks:
    """Attention pruned to links: for each (layer, head) and query, its strongest keys.

    All arrays have shape ``(n_links,)``. ``head`` is a head index in ``[0, n_heads)``,
    or :data:`HEAD_MEAN` (-1) for links of the mean over the layer's heads, or
    :data:`HEAD_MAX` (-2) for the max over heads. ``weight`` is the attention
    probability in ``[0, 1]`` (for the max, the max of the heads' probabilities).
    Links are kept when they are among the ``top_k`` keys of their query and their
    weight is at least ``min_weight``.

    Attributes:
        layer: (n_links,) int16 layer index.
        head: (n_links,) int16 head index, or -1 (mean) / -2 (max).
        query: (n_links,) int32 query position.
        key: (n_links,) int32 key position (``key <= query`` for causal models).
        weight: (n_links,) float32 attention weight.
        n_layers: number of layers of the model.
        n_heads: number of heads per layer.
        top_k: keys kept per query per head.
        min_weight: smallest weight kept.
    """

    layer: np.ndarray
    head: np.ndarray
    query: np.ndarray
    key: np.ndarray
    weight: np.ndarray
    n_layers: int
    n_heads: int
    top_k: int
    min_weight: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer", _as(self.layer, np.int16, "layer", 1))
        object.__setattr__(self, "head", _as(self.head, np.int16, "head", 1))
        object.__setattr__(self, "query", _as(self.query, np.int32, "query", 1))
        object.__setattr__(self, "key", _as(self.key, np.int32, "key", 1))
        object.__setattr__(self, "weight", _as(self.weight, np.float32, "weight", 1))
        n = self.layer.shape[0]
        for name in ("head", "query", "key", "weight"):
            if getattr(self, name).shape[0] != n:
                raise CoilvisValueError(f"AttentionLinks.{name}: expected {n} links")

    @property
    def n_links(self) -> int:
        """Number of links kept."""
        return int(self.layer.shape[0])

    def select(self, layer: int, head: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Links of one layer and head (or ``HEAD_MEAN``/``HEAD_MAX``).

        Args:
            layer: layer index in ``[0, n_layers)``.
            head: head index, or -1 for the mean / -2 for the max over heads.

        Returns:
            ``(query, key, weight)``, each ``(n,)``.
        """
        if not (0 <= layer < self.n_layers):
            raise CoilvisValueError(f"layer: {layer} is out of range [0, {self.n_layers})")
        if not (-2 <= head < self.n_heads):
            raise CoilvisValueError(
                f"head: {head} is out of range [0, {self.n_heads}) (or -1 mean, -2 max)"
            )
        mask = (self.layer == layer) & (self.head == head)
        return self.query[mask], self.key[mask], self.weight[mask]


@dataclass(frozen=True, eq=False)
class LensStats:
    """Logit-lens statistics: every layer's residual decoded through the model's head.

    Row ``i`` of every array is one decoded residual stream, named by
    ``layer_names[i]`` (``"embed"``, then ``"0"``, ``"1"``, ... for the output of each
    block, optionally ``"0.mid"`` for the residual after attention); the last row is
    the model's final output and equals its own logits.

    Attributes:
        layer_names: (n_rows,) names of the decoded residual streams.
        topk_ids: (n_rows, seq_len, k) int32 top-k token ids per cell.
        topk_probs: (n_rows, seq_len, k) float32 their probabilities.
        entropy: (n_rows, seq_len) float32 entropy in nats.
        kl_to_final: (n_rows, seq_len) float32 KL(final || row) in nats (0 on the last row).
        next_prob: (n_rows, seq_len) float32 probability of the actual next token (NaN
            at the last position).
        next_rank: (n_rows, seq_len) int32 its rank (1 = top; -1 at the last position).
        final_top_prob: (n_rows, seq_len) float32 probability of the final row's top token.
        final_top_rank: (n_rows, seq_len) int32 its rank in this row (1 = top).
    """

    layer_names: tuple[str, ...]
    topk_ids: np.ndarray
    topk_probs: np.ndarray
    entropy: np.ndarray
    kl_to_final: np.ndarray
    next_prob: np.ndarray
    next_rank: np.ndarray
    final_top_prob: np.ndarray
    final_top_rank: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "layer_names", tuple(str(s) for s in self.layer_names))
        object.__setattr__(self, "topk_ids", _as(self.topk_ids, np.int32, "lens.topk_ids", 3))
        object.__setattr__(self, "topk_probs", _as(self.topk_probs, np.float32, "lens.topk_probs", 3))
        for name, dtype in (
            ("entropy", np.float32),
            ("kl_to_final", np.float32),
            ("next_prob", np.float32),
            ("next_rank", np.int32),
            ("final_top_prob", np.float32),
            ("final_top_rank", np.int32),
        ):
            object.__setattr__(self, name, _as(getattr(self, name), dtype, f"lens.{name}", 2))
        n_rows, seq_len, _ = self.topk_ids.shape
        if len(self.layer_names) != n_rows:
            raise CoilvisValueError(
                f"lens.layer_names: {len(self.layer_names)} names for {n_rows} rows"
            )
        for name in ("entropy", "kl_to_final", "next_prob", "next_rank", "final_top_prob", "final_top_rank"):
            if getattr(self, name).shape != (n_rows, seq_len):
                raise CoilvisValueError(
                    f"lens.{name}: expected shape {(n_rows, seq_len)}, got {getattr(self, name).shape}"
                )

    @property
    def n_rows(self) -> int:
        """Number of decoded residual streams (layers)."""
        return int(self.topk_ids.shape[0])


_ARRAY_FIELDS = (
    "token_ids",
    "topk_ids",
    "topk_logits",
    "topk_probs",
    "log_z",
    "entropy",
    "next_logprob",
    "next_rank",
)


@dataclass(frozen=True, eq=False)
class Record:
    """What a model predicted at every position of one prompt.

    Position ``i`` holds the model's distribution over the token at ``i + 1`` (the
    next-token prediction after reading tokens ``0..i``). The actual next token of the
    last position is unknown, so its ``next_*`` values are NaN / -1. The statistics,
    their units (entropies in nats here, bits in the views) and ranks:
    :doc:`/concepts/statistics` (docs/concepts/statistics.md).

    Attributes:
        token_ids: (seq_len,) int64 input token ids (-1 for a token given as a string
            that the vocabulary lacks).
        tokens: (seq_len,) raw text of each input token (untrusted; escape before display).
        topk_ids: (seq_len, k) int64 top-k next-token ids, most likely first.
        topk_logits: (seq_len, k) float32 their logits.
        topk_probs: (seq_len, k) float32 their probabilities.
        log_z: (seq_len,) float32 log-sum-exp of each position's logits, so that
            ``log_prob = logit - log_z``.
        entropy: (seq_len,) float32 entropy of the next-token distribution, in nats.
        next_logprob: (seq_len,) float32 log-probability of the actual next token
            (NaN at the last position).
        next_rank: (seq_len,) int64 rank of the actual next token (1 = argmax: 1 + the
            number of tokens with a strictly greater logit, so ties share a rank; -1 at
            the last position).
        vocab: token id -> raw text, for every id the record mentions.
        d_vocab: size of the model's output vocabulary.
        model_name: a name for the model (free text).
        prompt: the prompt text, when known.
        attention: pruned attention links, when asked for.
        lens: logit-lens statistics, when asked for.
        extra: JSON-serialisable metadata (dtype, device, coilvis version, ...).
    """

    token_ids: np.ndarray
    tokens: tuple[str, ...]
    topk_ids: np.ndarray
    topk_logits: np.ndarray
    topk_probs: np.ndarray
    log_z: np.ndarray
    entropy: np.ndarray
    next_logprob: np.ndarray
    next_rank: np.ndarray
    vocab: dict[int, str]
    d_vocab: int
    model_name: str = ""
    prompt: str | None = None
    attention: AttentionLinks | None = None
    lens: LensStats | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_ids", _as(self.token_ids, np.int64, "token_ids", 1))
        object.__setattr__(self, "tokens", tuple(str(t) for t in self.tokens))
        object.__setattr__(self, "topk_ids", _as(self.topk_ids, np.int64, "topk_ids", 2))
        object.__setattr__(self, "topk_logits", _as(self.topk_logits, np.float32, "topk_logits", 2))
        object.__setattr__(self, "topk_probs", _as(self.topk_probs, np.float32, "topk_probs", 2))
        for name, dtype in (("log_z", np.float32), ("entropy", np.float32), ("next_logprob", np.float32), ("next_rank", np.int64)):
            object.__setattr__(self, name, _as(getattr(self, name), dtype, name, 1))
        object.__setattr__(self, "vocab", {int(k): str(v) for k, v in dict(self.vocab).items()})
        object.__setattr__(self, "d_vocab", check_int("d_vocab", self.d_vocab, minimum=1))
        if not isinstance(self.model_name, str):
            raise CoilvisTypeError(f"model_name: expected a str, got {type(self.model_name).__name__}")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise CoilvisTypeError(f"prompt: expected a str or None, got {type(self.prompt).__name__}")
        n = self.token_ids.shape[0]
        if n < 1:
            raise CoilvisValueError("token_ids: a Record needs at least one position")
        if len(self.tokens) != n:
            raise CoilvisValueError(f"tokens: {len(self.tokens)} strings for {n} token ids")
        k = self.topk_ids.shape[1]
        for name in ("topk_ids", "topk_logits", "topk_probs"):
            if getattr(self, name).shape != (n, k):
                raise CoilvisValueError(f"{name}: expected shape {(n, k)}, got {getattr(self, name).shape}")
        for name in ("log_z", "entropy", "next_logprob", "next_rank"):
            if getattr(self, name).shape != (n,):
                raise CoilvisValueError(f"{name}: expected shape {(n,)}, got {getattr(self, name).shape}")
        if self.lens is not None and self.lens.topk_ids.shape[1] != n:
            raise CoilvisValueError(f"lens: has {self.lens.topk_ids.shape[1]} positions, the record {n}")

    # ------------------------------------------------------------------ basics
    @property
    def seq_len(self) -> int:
        """Number of token positions."""
        return int(self.token_ids.shape[0])

    @property
    def k(self) -> int:
        """Number of top next tokens kept per position."""
        return int(self.topk_ids.shape[1])

    @property
    def next_ids(self) -> np.ndarray:
        """(seq_len,) int64 id of the actual next token (-1 at the last position)."""
        return next_ids_of(self.token_ids)

    @property
    def next_prob(self) -> np.ndarray:
        """(seq_len,) probability of the actual next token (NaN at the last position)."""
        return np.exp(self.next_logprob)

    def surprisal(self, *, bits: bool = True) -> np.ndarray:
        """(seq_len,) surprisal ``-log p(actual next token)``, in bits (default) or nats."""
        s = -self.next_logprob.astype(np.float64)
        return (s / LN2 if _check_bits(bits) else s).astype(np.float32)

    def entropy_in(self, *, bits: bool = True) -> np.ndarray:
        """(seq_len,) entropy of each next-token distribution, in bits (default) or nats."""
        h = self.entropy.astype(np.float64)
        return (h / LN2 if _check_bits(bits) else h).astype(np.float32)

    def token_text(self, token_id: int) -> str:
        """Raw text of a token id (``"<id N>"`` when the record has no string for it)."""
        token_id = check_int("token_id", token_id)
        return self.vocab.get(token_id, f"<id {token_id}>")

    def table(self, pos: int | None = -1, k: int | None = None) -> pd.DataFrame:
        """The top-k next tokens at a position as a DataFrame.

        Args:
            pos: position (negative counts from the end); ``None`` for every position
                (then the frame has a ``pos`` column).
            k: rows per position, at most the ``k`` the record kept (default: 10, or
                every kept token when the record kept fewer).

        Returns:
            DataFrame with columns ``token_id, token, logit, log_prob, prob, rank,
            is_target`` (``is_target`` marks the actual next token), sorted by logit.
        """
        from coilvis.frames import record_table

        return record_table(self, pos=pos, k=check_k(k, available=self.k, default=DEFAULT_K))

    # ------------------------------------------------------------------ save/load
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the record to ``path`` (format version 2, see module docstring).

        The file is written atomically (:func:`coilvis.files.atomic_writer`: a
        temporary file in the same folder, ``fsync``, rename), so a crash never leaves
        a half-written file over a good one; missing folders are created. The same
        record always gives the same bytes.

        Returns:
            The path written.

        Raises:
            CoilvisTypeError: ``path`` is not a str or path; ``extra`` is not
                JSON-serialisable.
            CoilvisValueError: ``path`` is a folder, or lies below a file.
            OSError: the file cannot be written (the error names ``path``).
        """
        target = check_output_path(path, name="path")
        meta_json = encode_meta(self._meta())
        arrays = self._arrays()
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(target) as handle:
            write_record_file(handle, meta_json, arrays)
        return target

    def _meta(self) -> dict[str, Any]:
        """``meta.json`` of the saved file."""
        scalars: dict[str, Any] = {
            "d_vocab": self.d_vocab,
            "model_name": self.model_name,
            "prompt": self.prompt,
            "extra": self.extra,
        }
        strings: dict[str, Any] = {"tokens": list(self.tokens), "vocab_text": [self.vocab[i] for i in sorted(self.vocab)]}
        if self.attention is not None:
            a = self.attention
            scalars["attention"] = {"n_layers": a.n_layers, "n_heads": a.n_heads, "top_k": a.top_k, "min_weight": a.min_weight}
        if self.lens is not None:
            strings["lens_layer_names"] = list(self.lens.layer_names)
        return {
            "format": "coilvis.record",
            "version": FORMAT_VERSION,
            "coilvis_version": __version__,
            "scalars": scalars,
            "strings": strings,
        }

    def _arrays(self) -> dict[str, np.ndarray]:
        """The saved arrays, by member name."""
        arrays: dict[str, np.ndarray] = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        arrays["vocab_ids"] = np.array(sorted(self.vocab), dtype=np.int64)
        if self.attention is not None:
            for name in ("layer", "head", "query", "key", "weight"):
                arrays[f"attention.{name}"] = getattr(self.attention, name)
        if self.lens is not None:
            for f in fields(LensStats):
                if f.name != "layer_names":
                    arrays[f"lens.{f.name}"] = getattr(self.lens, f.name)
        return arrays

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Record:
        """Read a record written by :meth:`save`, checking everything in it.

        A damaged or hostile file fails before any large array is read (see
        :mod:`coilvis.record_format`).

        Raises:
            CoilvisTypeError: ``path`` is not a str or path.
            CoilvisValueError: ``path`` is a folder.
            CoilvisFileNotFoundError: no file at ``path`` (also a ``FileNotFoundError``).
            RecordFormatError: the file is not a coilvis record, is damaged, is
                inconsistent, or comes from a newer format version.
        """
        source = as_path(path, name="path")
        if source.is_dir():
            raise CoilvisValueError(f"path: {str(source)!r} is a folder, expected a record file")
        if not source.exists():
            raise CoilvisFileNotFoundError(f"path: no record file at {source}")
        contents = read_record_file(source)
        try:
            return cls._from_contents(contents)
        except (CoilvisValueError, CoilvisTypeError) as exc:
            raise RecordFormatError(f"path: {source} is not a valid coilvis record: {exc}") from exc

    @classmethod
    def _from_contents(cls, contents: Contents) -> Record:
        scalars, strings, arrays = contents.meta["scalars"], contents.meta["strings"], contents.arrays
        attention = None
        if "attention" in scalars:
            a = scalars["attention"]
            attention = AttentionLinks(
                **{n: arrays[f"attention.{n}"] for n in ("layer", "head", "query", "key", "weight")},
                n_layers=a["n_layers"],
                n_heads=a["n_heads"],
                top_k=a["top_k"],
                min_weight=float(a["min_weight"]),
            )
        lens = None
        if "lens_layer_names" in strings:
            lens = LensStats(
                layer_names=tuple(strings["lens_layer_names"]),
                **{f.name: arrays[f"lens.{f.name}"] for f in fields(LensStats) if f.name != "layer_names"},
            )
        return cls(
            **{name: arrays[name] for name in _ARRAY_FIELDS},
            tokens=tuple(strings["tokens"]),
            vocab=dict(zip(arrays["vocab_ids"].tolist(), strings["vocab_text"])),
            d_vocab=scalars["d_vocab"],
            model_name=scalars.get("model_name") or "",
            prompt=scalars.get("prompt"),
            attention=attention,
            lens=lens,
            extra=dict(scalars.get("extra") or {}),
        )

    def __repr__(self) -> str:
        extras = []
        if self.attention is not None:
            extras.append(f"attention={self.attention.n_links} links")
        if self.lens is not None:
            extras.append(f"lens={self.lens.n_rows} layers")
        more = (", " + ", ".join(extras)) if extras else ""
        return f"Record(model={self.model_name!r}, seq_len={self.seq_len}, k={self.k}, d_vocab={self.d_vocab}{more})"
