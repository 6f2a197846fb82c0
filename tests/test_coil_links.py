"""The coil's links (coilvis.views.coil.links): self-links, threshold, top-k per query, the page budget."""

from __future__ import annotations

import numpy as np
import pytest

import coilvis
from coilvis.views.coil import AttentionChoice
from coilvis.views.coil.links import share_budget

try:  # tests/ on sys.path (pytest's default import mode for a folder without __init__.py)
    from coil_records import make_record
except ImportError:  # tests is a package
    from tests.coil_records import make_record


@pytest.fixture(scope="module")
def record() -> coilvis.Record:
    return make_record(40)


def candidate_links(
    record: coilvis.Record, choice: AttentionChoice, *, threshold: float, top_k: int, hide_sink: bool
) -> set[tuple[int, int]]:
    q, k, w = record.attention.select(choice.layer, choice.head)
    out = set()
    for query in np.unique(q):
        rows = [
            (float(wj), int(kj))
            for qj, kj, wj in zip(q, k, w, strict=True)
            if qj == query and kj != qj and wj >= threshold and not (hide_sink and kj == 0)
        ]
        rows.sort(reverse=True)
        out.update((int(query), key) for _, key in rows[:top_k])
    return out


@pytest.mark.parametrize(("top_k", "threshold", "hide_sink"), [(1, 0.0, False), (3, 0.05, False), (2, 0.0, True)])
def test_links_follow_top_k_threshold_and_sink(
    record: coilvis.Record, top_k: int, threshold: float, hide_sink: bool
) -> None:
    view = coilvis.coil(
        record,
        attention=[(0, 1), (1, "mean")],
        attention_top_k=top_k,
        attention_threshold=threshold,
        hide_sink=hide_sink,
    )
    data = view.links.data
    for c, choice in enumerate(view.choices):
        rows = data["choice"] == c
        got = set(zip(data["query"][rows].tolist(), data["key"][rows].tolist(), strict=True))
        assert got == candidate_links(record, choice, threshold=threshold, top_k=top_k, hide_sink=hide_sink)
        q, k, w = record.attention.select(choice.layer, choice.head)
        weights = {(int(a), int(b)): float(c_) for a, b, c_ in zip(q, k, w, strict=True)}
        assert [
            weights[pair] for pair in zip(data["query"][rows].tolist(), data["key"][rows].tolist(), strict=True)
        ] == pytest.approx(data["weight"][rows].tolist())
        assert np.all(np.diff(data["weight"][rows]) >= 0)  # heavier drawn last
    assert np.all(data["query"] != data["key"])
    assert np.all(data["weight"] >= threshold)
    if hide_sink:
        assert np.all(data["key"] != 0)
    assert view.n_links_dropped == 0


def test_links_obey_the_page_budget(record: coilvis.Record) -> None:
    free = coilvis.coil(
        record, attention=[(0, 0), (0, "mean"), (1, "max")], attention_top_k=None, attention_threshold=0.0
    )
    counts = np.bincount(free.links.data["choice"], minlength=3)
    budget = int(counts.sum() * 0.5)
    view = coilvis.coil(
        record,
        attention=[(0, 0), (0, "mean"), (1, "max")],
        attention_top_k=None,
        attention_threshold=0.0,
        max_links=budget,
    )
    data = view.links.data
    assert len(data["query"]) == budget
    assert view.n_links_dropped == counts.sum() - budget
    kept = np.bincount(data["choice"], minlength=3)
    for c in range(3):  # shared evenly: a choice keeps all its links or about as many as any other
        assert kept[c] == counts[c] or kept[c] >= kept.max() - 1
    for c in range(3):  # each choice keeps its heaviest links
        all_w = np.sort(free.links.data["weight"][free.links.data["choice"] == c])
        kept_w = np.sort(data["weight"][data["choice"] == c])
        np.testing.assert_allclose(kept_w, all_w[all_w.size - kept_w.size :])
    assert len(coilvis.coil(record, attention="mean", max_links=0).links.data["query"]) == 0


def test_a_choice_with_few_links_keeps_them_all() -> None:
    n = 30
    uniform = np.tril(np.ones((n, n))) / np.arange(1, n + 1)[:, None]  # weight 1/(q+1) on every key
    previous = np.eye(n, k=-1) * 0.9 + np.eye(n) * 0.1  # 0.9 on the previous token
    previous[0, 0] = 1.0
    pattern = np.stack([uniform, previous])[:, None].astype(np.float32)  # 2 layers x 1 head
    rec = coilvis.from_logits(
        np.zeros((n, 3)), tokens=[0] * n, vocab=["a", "b", "c"], attention=pattern, attention_top_k=8
    )
    spec = [(0, 0), (1, 0)]
    free = coilvis.coil(rec, attention=spec, attention_threshold=0.2, attention_top_k=None)
    counts = np.bincount(free.links.data["choice"], minlength=2)
    assert counts.tolist() == [1 + 2 + 3 + 4, n - 1]  # queries 1-4 see keys of weight >= 0.2
    view = coilvis.coil(rec, attention=spec, attention_threshold=0.2, attention_top_k=None, max_links=20)
    assert np.bincount(view.links.data["choice"], minlength=2).tolist() == [10, 10]
    assert view.n_links_dropped == n - 1 - 10


@pytest.mark.parametrize(
    ("counts", "max_links", "want"),
    [
        ([2, 100, 50], 60, [2, 29, 29]),  # the small choice keeps all; the rest split what is left
        ([5, 5], 100, [5, 5]),
        ([10, 10, 10], 10, [3, 3, 4]),
        ([10, 10, 10], 0, [0, 0, 0]),
        ([], 10, []),
    ],
)
def test_share_budget(counts: list[int], max_links: int, want: list[int]) -> None:
    got = share_budget(counts, max_links)
    assert got == want
    assert sum(got) == min(sum(counts), max_links)
    assert all(0 <= b <= c for b, c in zip(got, counts, strict=True))
