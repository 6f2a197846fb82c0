"""Readable text for tokenizer vocabulary entries, for every tokenizer family.

A vocabulary piece is not the text it stands for. Byte-level BPE (GPT-2, Llama-3,
SmolLM2) writes each byte as a printable stand-in character (``Ġ`` is a space, ``Ċ`` a
newline); SentencePiece writes a space as ``▁`` and falls back to byte pieces such as
``<0x0A>``; WordPiece and character vocabularies are plain text. This module turns
pieces into the raw text (:func:`piece_to_bytes`, :func:`token_text`,
:func:`vocab_texts`) and raw text into a label a person can read (:func:`display`),
which is exact: its markers (``↵ ⇥ ␍ ␣ ∅``) and escapes (``\\x00``, ``\\u202e``)
never look like text the token holds, because a literal marker or a backslash that
could start an escape is escaped itself (see :func:`display` for the rules). A raw text
still cannot tell a byte that is not UTF-8 (``\\xe2``) from those four characters, and
two ids may share a text, so views show the token id beside every label of one token.
:func:`display_lines` shows multi-line text (a prompt, a title) the same way with its
line breaks kept.

Only the standard library is used; a tokenizer is duck-typed (anything with
``convert_ids_to_tokens`` or ``get_vocab``, as Hugging Face tokenizers have).
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence, Set
from typing import Any

from coilvis.errors import CoilvisTypeError, CoilvisValueError

__all__ = [
    "SCHEMES",
    "bytes_to_unicode",
    "piece_to_bytes",
    "token_text",
    "display",
    "display_lines",
    "LABEL_WHITESPACE",
    "label_whitespace",
    "detect_scheme",
    "vocab_texts",
    "vocab_from_list",
]

SCHEMES: tuple[str, ...] = ("byte_level", "sentencepiece", "plain")
"""The piece encodings coilvis knows, as accepted by ``scheme=`` arguments."""

_WHITESPACE_MODES = ("edges", "all", "none", "subtle")

#: The ``whitespace=`` option of the views (how dense labels show leading and trailing
#: spaces) and the :func:`display` mode each one draws with: ``"markers"`` the exact
#: label (``␣``), ``"subtle"`` a light, narrow ``·`` (not exact), ``"plain"`` plain
#: spaces (not exact).
LABEL_WHITESPACE: Mapping[str, str] = {"markers": "edges", "subtle": "subtle", "plain": "none"}
_SP_SPACE = "\u2581"  # ▁
_SP_BYTE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_ALWAYS_VISIBLE = {"\n": "\u21b5", "\t": "\u21e5", "\r": "\u240d"}  # ↵ ⇥ ␍
_SPACE_MARK = "\u2423"  # ␣
_SUBTLE_MARK = "\u00b7"  # ·
_EMPTY_MARK = "\u2205"  # ∅
_ELLIPSIS = "\u2026"  # …
_ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp", "Zs"})
# characters a label uses as markers or escapes: a literal one in a text is escaped
_MARKERS = frozenset((*_ALWAYS_VISIBLE.values(), _SPACE_MARK, _EMPTY_MARK))
_SPECIAL = frozenset((*_MARKERS, "\\"))
# what a literal backslash must not be read as the start of: another backslash, or an
# escape of display's own (\xHH for HH < 80; \xHH from 80 up is token_text's byte)
_ESCAPE_AHEAD = re.compile(r"\\|x[0-7][0-9A-Fa-f]|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}")


def _type_name(value: object) -> str:
    return type(value).__name__


def _check_scheme(scheme: object) -> str:
    if not isinstance(scheme, str):
        raise CoilvisTypeError(f"scheme: expected str, got {_type_name(scheme)}")
    if scheme not in SCHEMES:
        raise CoilvisValueError(f"scheme: expected one of {SCHEMES}, got {scheme!r}")
    return scheme


@functools.cache
def _byte_table() -> dict[int, str]:
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    table = {b: chr(b) for b in printable}
    n_shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + n_shifted)
            n_shifted += 1
    return table


@functools.cache
def _unicode_to_byte() -> tuple[dict[int, str], frozenset[str]]:
    # str.translate table: stand-in code point -> the latin-1 character of its byte
    table = {ord(char): chr(b) for b, char in _byte_table().items()}
    return table, frozenset(_byte_table().values())


def bytes_to_unicode() -> dict[int, str]:
    """The GPT-2 byte-level table: each byte value to its printable stand-in character.

    Printable latin-1 bytes stand for themselves; the other 68 (controls, space, DEL,
    NBSP, soft hyphen) are shifted to ``chr(256 + n)`` in byte order.

    Returns:
        A new ``dict[int, str]`` with 256 entries, byte value in ``[0, 255]`` to a
        one-character str.

    Examples:
        >>> table = bytes_to_unicode()
        >>> table[ord(" ")], table[ord("\\n")], table[ord("\\t")], table[ord("A")]
        ('Ġ', 'Ċ', 'ĉ', 'A')
    """
    return dict(_byte_table())


def piece_to_bytes(piece: str, *, scheme: str) -> bytes:
    """The bytes one vocabulary piece stands for.

    Args:
        piece: A vocabulary entry as the tokenizer stores it, e.g. ``"ĠParis"``.
        scheme: ``"byte_level"`` (GPT-2 table, see :func:`bytes_to_unicode`; a character
            outside the table counts as its own UTF-8), ``"sentencepiece"`` (``▁`` is a
            space, a whole piece ``<0xNN>`` is the one byte ``0xNN``) or ``"plain"``
            (UTF-8 of the piece as is; a ``##`` WordPiece marker is kept).

    Returns:
        The bytes; lone surrogates are encoded as UTF-8 would if they were allowed.

    Raises:
        CoilvisTypeError: ``piece`` or ``scheme`` is not a str.
        CoilvisValueError: ``scheme`` is not one of :data:`SCHEMES`.

    Examples:
        >>> piece_to_bytes("ĠParis", scheme="byte_level")
        b' Paris'
        >>> piece_to_bytes("<0x0A>", scheme="sentencepiece"), piece_to_bytes("▁a", scheme="sentencepiece")
        (b'\\n', b' a')
    """
    if not isinstance(piece, str):
        raise CoilvisTypeError(f"piece: expected str, got {_type_name(piece)}")
    _check_scheme(scheme)
    return _piece_to_bytes(piece, scheme)


def _piece_to_bytes(piece: str, scheme: str) -> bytes:
    if scheme == "byte_level":
        translate, known = _unicode_to_byte()
        if known.issuperset(piece):
            return piece.translate(translate).encode("latin-1")
        return b"".join(
            piece_char.translate(translate).encode("latin-1")
            if piece_char in known
            else piece_char.encode("utf-8", "surrogatepass")
            for piece_char in piece
        )
    if scheme == "sentencepiece":
        match = _SP_BYTE.fullmatch(piece)
        if match is not None:
            return bytes([int(match.group(1), 16)])
        piece = piece.replace(_SP_SPACE, " ")
    return piece.encode("utf-8", "surrogatepass")


def token_text(piece: str, *, scheme: str, special: bool = False) -> str:
    """The raw text one vocabulary piece stands for.

    Args:
        piece: A vocabulary entry as the tokenizer stores it.
        scheme: How pieces encode bytes; one of :data:`SCHEMES`.
        special: True for special tokens (``<s>``, ``<|im_start|>``, ...), which stand
            for themselves and are returned unchanged.

    Returns:
        The bytes of :func:`piece_to_bytes` decoded as UTF-8. Bytes that are not valid
        UTF-8 on their own (a token holding part of a multi-byte character) appear as
        ``\\xNN`` escapes; valid parts around them decode normally. Never raises for a
        str ``piece`` and a known ``scheme``.

    Examples:
        >>> token_text("ĠParis", scheme="byte_level")
        ' Paris'
        >>> print(token_text("<0xE2>", scheme="sentencepiece"))
        \\xe2
        >>> token_text("<|im_start|>", scheme="byte_level", special=True)
        '<|im_start|>'
    """
    if not isinstance(piece, str):
        raise CoilvisTypeError(f"piece: expected str, got {_type_name(piece)}")
    _check_scheme(scheme)
    if special:
        return piece
    return _piece_to_bytes(piece, scheme).decode("utf-8", "backslashreplace")


@functools.lru_cache(maxsize=4096)
def _char_label(char: str) -> str:
    if char in _ALWAYS_VISIBLE:
        return _ALWAYS_VISIBLE[char]
    if char in _MARKERS or (char != " " and unicodedata.category(char) in _ESCAPED_CATEGORIES):
        code = ord(char)
        if code < 0x80:
            return f"\\x{code:02x}"
        if code <= 0xFFFF:
            return f"\\u{code:04x}"
        return f"\\U{code:08x}"
    return char


def _units(text: str) -> list[str]:
    """What each character of ``text`` shows as (spaces still as spaces)."""
    if text.isprintable() and _SPECIAL.isdisjoint(text):
        return list(text)
    units = [_char_label(char) for char in text]
    if "\\" in text:  # double each backslash that would read as the start of an escape
        for index, char in enumerate(text):
            if char == "\\" and _ESCAPE_AHEAD.match("".join(units[index + 1 : index + 10])):
                units[index] = "\\\\"
    return units


def display(text: str, *, max_len: int | None = None, whitespace: str = "edges") -> str:
    """A label a person can read for a raw token text, exact and with its whitespace visible.

    Newline, tab and carriage return always show as ``↵``, ``⇥``, ``␍``. Other control
    characters (C0, DEL, C1), format characters (zero-width space, BOM, bidi overrides
    and isolates, which could reorder a label), surrogates, line/paragraph separators
    and non-ASCII spaces (NBSP, ...) show as Python-style escapes: ``\\xHH`` below
    U+0080 (``\\x00``, ``\\x07``), else ``\\uHHHH`` (``\\u0085``, ``\\u202e``) or
    ``\\UHHHHHHHH``. The empty string shows as ``∅``. The result is not HTML-escaped:
    ``<``, ``&`` and quotes pass through, and the renderer escapes them.

    A label without a cut is exact: two different texts never get the same label, so
    a marker never looks like a character the text holds (the tests decode labels back).

    * A literal ``↵``, ``⇥``, ``␍``, ``␣`` or ``∅`` in the text shows as its escape
      (``\\u21b5``, ``\\u21e5``, ``\\u240d``, ``\\u2423``, ``\\u2205``).
    * A literal backslash shows doubled, ``\\\\``, where it would otherwise read as the
      start of an escape: before another backslash or escape, ``xHH`` with HH below
      80, ``uHHHH`` or ``UHHHHHHHH``; elsewhere as itself. So the two characters ``\\n``
      show as ``\\n`` (a newline is ``↵``) and the four characters ``\\x00`` as
      ``\\\\x00`` (a NUL is ``\\x00``).
    * ``\\xHH`` with HH of 80 or more is how :func:`token_text` writes a byte that is
      not UTF-8 on its own (part of a character split between tokens); it shows as
      written. The raw text cannot tell such a byte from the same four characters
      typed literally, and two token ids may share one text: that is why every coilvis
      view shows a token's id next to its label wherever it names one token (hovers,
      the top-k table, the unwind readout).

    A cut label (``max_len``) ends with ``…`` and is not exact (a literal ``…`` is
    kept as is); the id tells cut labels apart.

    Args:
        text: Raw token text, e.g. from :func:`token_text`.
        max_len: At most this many characters in the result (>= 1); a longer label is
            cut before a whole character or escape and ends with ``…``. None: no limit.
        whitespace: Which spaces (U+0020) become ``␣``: ``"edges"`` the leading and
            trailing ones, ``"all"`` every one, ``"none"`` none. A text of spaces only
            shows every space marked in every mode. ``"subtle"`` is ``"edges"`` with a
            light, narrow ``·`` (U+00B7) as the marker instead of ``␣``, for dense
            places (a heatmap's cells): its labels are **not exact**, since a literal
            ``·`` in the text is not escaped (the exactness above holds for the other
            modes).

    Returns:
        The label, a str of length <= ``max_len``.

    Raises:
        CoilvisTypeError: ``text`` is not a str or ``max_len`` is not an int.
        CoilvisValueError: ``max_len`` < 1 or ``whitespace`` is unknown.

    Examples:
        >>> display(" New York"), display("\\n\\n"), display("  "), display("")
        ('␣New York', '↵↵', '␣␣', '∅')
        >>> display(" New York", whitespace="all"), display("abcdef", max_len=4)
        ('␣New␣York', 'abc…')
        >>> display(" New York ", whitespace="subtle"), display(" New York ", whitespace="none")
        ('·New York·', ' New York ')
        >>> print(display("\\\\n"), display("\\\\x00"), display("\\x00"), display("↵"), display("\\\\xe2"))
        \\n \\\\x00 \\x00 \\u21b5 \\xe2
    """
    if not isinstance(text, str):
        raise CoilvisTypeError(f"text: expected str, got {_type_name(text)}")
    if max_len is not None:
        if isinstance(max_len, bool) or not isinstance(max_len, int):
            raise CoilvisTypeError(f"max_len: expected int or None, got {_type_name(max_len)}")
        if max_len < 1:
            raise CoilvisValueError(f"max_len: expected an int >= 1, got {max_len}")
    if whitespace not in _WHITESPACE_MODES:
        raise CoilvisValueError(f"whitespace: expected one of {_WHITESPACE_MODES}, got {whitespace!r}")
    if not text:
        return _EMPTY_MARK
    units = _units(text)
    n_chars = len(text)
    if whitespace == "all" or text.count(" ") == n_chars:
        start, stop = n_chars, n_chars  # no inner range: every space is marked
    elif whitespace in ("edges", "subtle"):
        start, stop = n_chars - len(text.lstrip(" ")), len(text.rstrip(" "))
    else:
        start, stop = 0, n_chars
    mark = _SUBTLE_MARK if whitespace == "subtle" else _SPACE_MARK
    for index, char in enumerate(text):
        if char == " " and not start <= index < stop:
            units[index] = mark
    label = "".join(units)
    if max_len is None or len(label) <= max_len:
        return label
    kept: list[str] = []
    n_kept = 0
    for unit in units:
        if n_kept + len(unit) > max_len - 1:
            break
        kept.append(unit)
        n_kept += len(unit)
    return "".join(kept) + _ELLIPSIS


def label_whitespace(whitespace: Any) -> str:
    """The :func:`display` mode of a view's ``whitespace=`` option (see :data:`LABEL_WHITESPACE`).

    Raises:
        CoilvisValueError: ``whitespace`` is not ``"markers"``, ``"subtle"`` or ``"plain"``.

    Examples:
        >>> label_whitespace("subtle"), display(" Paris", whitespace=label_whitespace("plain"))
        ('subtle', ' Paris')
    """
    if not isinstance(whitespace, str) or whitespace not in LABEL_WHITESPACE:
        raise CoilvisValueError(f"whitespace: expected one of {list(LABEL_WHITESPACE)}, got {whitespace!r}")
    return LABEL_WHITESPACE[whitespace]


def display_lines(text: str) -> str:
    """Multi-line text (a prompt, a title, a message) made safe to show, line breaks kept.

    Each line shows as :func:`display` shows it with ``whitespace="none"`` (spaces stay
    spaces): control and format characters (NUL, bidi overrides, zero-width spaces),
    surrogates, tabs (``⇥``), carriage returns (``␍``) and literal markers or
    escape-like backslashes are made visible, so nothing is hidden, nothing reorders the
    text and every character can be written as UTF-8. Lines are joined with ``"\\n"``;
    an empty line (or text) stays empty. Not HTML-escaped.

    Args:
        text: the text.

    Returns:
        The text to show.

    Raises:
        CoilvisTypeError: ``text`` is not a str.

    Examples:
        >>> display_lines("a\\tb\\n\\nc\\u202ed\\x00")
        'a⇥b\\n\\nc\\\\u202ed\\\\x00'
    """
    if not isinstance(text, str):
        raise CoilvisTypeError(f"text: expected str, got {_type_name(text)}")
    return "\n".join("".join(_units(line)) for line in text.split("\n"))


def _scheme_hint(tokenizer: Any) -> str | None:
    """The scheme named by a Hugging Face fast tokenizer's decoder, if it names one."""
    try:
        decoder = getattr(tokenizer, "backend_tokenizer", tokenizer).decoder
        state = json.loads(decoder.__getstate__()) if decoder is not None else None
    except Exception:  # any tokenizer without a readable decoder: fall back to pieces
        return None
    types: list[str] = []
    patterns: list[str] = []
    stack = [state]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            types.append(str(node.get("type")))
            patterns.append(json.dumps(node.get("pattern"), ensure_ascii=False))
            stack.extend(node.get("decoders") or [])
    if "ByteLevel" in types:
        return "byte_level"
    if {"Metaspace", "ByteFallback"} & set(types) or any(_SP_SPACE in p for p in patterns):
        return "sentencepiece"
    return None


def _all_pieces(tokenizer: Any) -> list[str]:
    if hasattr(tokenizer, "get_vocab"):
        return [piece for piece in tokenizer.get_vocab() if isinstance(piece, str)]
    if hasattr(tokenizer, "convert_ids_to_tokens") and hasattr(tokenizer, "__len__"):
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        return [piece for piece in pieces if isinstance(piece, str)]
    raise CoilvisTypeError(
        f"tokenizer: expected an object with get_vocab() or convert_ids_to_tokens() and len(), "
        f"got {_type_name(tokenizer)}"
    )


def detect_scheme(tokenizer: Any) -> str:
    """Which piece encoding a tokenizer uses, one of :data:`SCHEMES`.

    A Hugging Face fast tokenizer's decoder decides when it names one (``ByteLevel`` or
    ``Metaspace``/``ByteFallback``). Otherwise the pieces decide: pieces containing ``Ġ``
    or ``Ċ`` count for ``"byte_level"``, pieces starting with ``▁`` or byte pieces
    ``<0xNN>`` for ``"sentencepiece"``; the larger count wins if it reaches 1% of the
    vocabulary, else ``"plain"``.

    Args:
        tokenizer: Any object with ``get_vocab()`` (piece to id), or with
            ``convert_ids_to_tokens(list[int])`` and ``len()``.

    Returns:
        ``"byte_level"``, ``"sentencepiece"`` or ``"plain"``.

    Raises:
        CoilvisTypeError: ``tokenizer`` has neither way to list its pieces.

    Examples:
        >>> class Vocab:
        ...     def get_vocab(self):
        ...         return {"ĠParis": 0, "Ċ": 1, "is": 2}
        >>> detect_scheme(Vocab())
        'byte_level'
    """
    hint = _scheme_hint(tokenizer)
    if hint is not None:
        return hint
    pieces = _all_pieces(tokenizer)
    n_byte_level = sum(1 for piece in pieces if "Ġ" in piece or "Ċ" in piece)
    n_sentencepiece = sum(
        1 for piece in pieces if piece.startswith(_SP_SPACE) or _SP_BYTE.fullmatch(piece) is not None
    )
    threshold = max(1, len(pieces) // 100)
    if max(n_byte_level, n_sentencepiece) < threshold:
        return "plain"
    return "byte_level" if n_byte_level >= n_sentencepiece else "sentencepiece"


def _special_ids(tokenizer: Any) -> set[int]:
    special = {int(i) for i in getattr(tokenizer, "all_special_ids", None) or ()}
    # added tokens hold their literal text (never byte-encoded), special or not
    added = getattr(tokenizer, "added_tokens_decoder", None)
    if isinstance(added, Mapping):
        special.update(int(i) for i in added)
    return special


def vocab_texts(tokenizer: Any, ids: Iterable[int], *, scheme: str | None = None) -> dict[int, str]:
    """The raw text of each token id, for drawing labels.

    Args:
        tokenizer: A duck-typed tokenizer with ``convert_ids_to_tokens(list[int])``
            (returning None for unknown ids is fine) and ``len()``; ``all_special_ids``
            and ``added_tokens_decoder`` are used when present (those tokens show as
            written).
        ids: Token ids (ints, numpy ints allowed), e.g. ``range(d_vocab)``.
        scheme: One of :data:`SCHEMES`; None detects it with :func:`detect_scheme`.

    Returns:
        ``dict[int, str]`` id to raw text (see :func:`token_text`). Ids outside
        ``[0, len(tokenizer))``, e.g. padding rows of an unembedding wider than the
        tokenizer, map to ``"<id N>"``.

    Raises:
        CoilvisTypeError: an id is not an int, or ``tokenizer`` lacks the methods.
        CoilvisValueError: ``scheme`` is unknown.

    Examples:
        >>> class Tok:
        ...     pieces = ["<s>", "▁Paris", "<0x0A>"]
        ...     all_special_ids = [0]
        ...     def __len__(self):
        ...         return len(self.pieces)
        ...     def convert_ids_to_tokens(self, ids):
        ...         return [self.pieces[i] for i in ids]
        >>> vocab_texts(Tok(), [0, 1, 2, 5])
        {0: '<s>', 1: ' Paris', 2: '\\n', 5: '<id 5>'}
    """
    if scheme is None:
        scheme = detect_scheme(tokenizer)
    _check_scheme(scheme)
    try:
        n_vocab = len(tokenizer)
        convert = tokenizer.convert_ids_to_tokens
    except (TypeError, AttributeError):
        raise CoilvisTypeError(
            f"tokenizer: expected an object with convert_ids_to_tokens() and len(), got {_type_name(tokenizer)}"
        ) from None
    id_list: list[int] = []
    for token_id in ids:
        if isinstance(token_id, bool) or not hasattr(token_id, "__index__"):
            raise CoilvisTypeError(f"ids: expected int ids, got {_type_name(token_id)}")
        id_list.append(token_id.__index__())
    known = sorted({i for i in id_list if 0 <= i < n_vocab})
    pieces = dict(zip(known, convert(known))) if known else {}
    special = _special_ids(tokenizer)
    texts: dict[int, str] = {}
    for token_id in id_list:
        piece = pieces.get(token_id)
        if not isinstance(piece, str):
            texts[token_id] = f"<id {token_id}>"
        elif token_id in special:
            texts[token_id] = piece
        else:
            texts[token_id] = _piece_to_bytes(piece, scheme).decode("utf-8", "backslashreplace")
    return texts


def vocab_from_list(vocab: Sequence[str] | Mapping[int, str], *, name: str = "vocab") -> dict[int, str]:
    """A user-given vocabulary as ``dict[int, str]`` (id to raw text).

    Args:
        vocab: A sequence of str (list index is the id; numpy arrays of str work too) or
            a mapping from non-negative int id to str.
        name: the argument name used in error messages.

    Returns:
        A new ``dict[int, str]``.

    Raises:
        CoilvisTypeError: ``vocab`` is a str, a set or not iterable, or an entry is
            not a str, or a key is not an int.
        CoilvisValueError: a key is negative.

    Examples:
        >>> vocab_from_list(["a", " b"])
        {0: 'a', 1: ' b'}
        >>> vocab_from_list({5: "x"})
        {5: 'x'}
    """
    if isinstance(vocab, Mapping):
        items = list(vocab.items())
    elif isinstance(vocab, (str, bytes, bytearray, Set)) or not isinstance(vocab, Iterable):
        raise CoilvisTypeError(f"{name}: expected a sequence or mapping of str, got {_type_name(vocab)}")
    else:
        items = list(enumerate(vocab))
    out: dict[int, str] = {}
    for key, text in items:
        if isinstance(key, bool) or not hasattr(key, "__index__"):
            raise CoilvisTypeError(f"{name}: expected int keys, got {_type_name(key)} key {key!r}")
        token_id = key.__index__()
        if token_id < 0:
            raise CoilvisValueError(f"{name}: expected non-negative ids, got {token_id}")
        if not isinstance(text, str):
            raise CoilvisTypeError(f"{name}[{token_id}]: expected str, got {_type_name(text)}")
        out[token_id] = str(text)
    return out
