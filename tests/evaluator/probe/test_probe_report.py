"""The report's table of every probed system: paired on the items all of them scored (the RAG probe's sample),
its tests in the section's one Holm family, and the headline's "stored" cell for closed-book and RAG."""

from __future__ import annotations

import pytest
from test_probe_sample import items

from services.evaluator.report import probe as probe_report
from shared.schemas.probe import ProbeResult, ProbeSystem

SYSTEMS = {"ngram-1": "ngram", "ngram-2": "ngram", "scratch@init": "scratch", "scratch@step00000100": "scratch",
           "scratch": "scratch", "gguf": "gguf", "closed_book": "closed_book", "rag": "rag"}


def result(system: str, item: str, right: bool) -> ProbeResult:
    return ProbeResult(item=item, system=system, loglikelihoods=[-1.0, -2.0] if right else [-2.0, -1.0],
                       lengths=[2, 2], rank=1 if right else 2, rank_norm=1 if right else 2, greedy="x",
                       greedy_match=right)


@pytest.fixture(scope="module")
def data():
    every = items()
    sample = every[::4]  # the RAG probe's 25 of 100
    right = {"rag": lambda n: True, "closed_book": lambda n: n % 8 == 0, "scratch": lambda n: n % 3 == 0,
             "gguf": lambda n: n % 3 == 0}
    results = [result(name, item.id, right.get(name, lambda n: n % 5 == 0)(n))
               for name in SYSTEMS for n, item in enumerate(every)
               if name not in ("rag", "closed_book") or item in sample]
    systems = [ProbeSystem(name=name, kind=kind, step=100 if name.endswith("100") else None)
               for name, kind in SYSTEMS.items()]
    return probe_report.ProbeData("probe-scratch/a", every, results, systems, ["probe-gguf/b", "probe-rag/c"])


def test_every_system_is_compared_on_the_items_all_of_them_scored(data):
    _, numbers = probe_report.section(data, seed=0)
    shared = numbers["paired_systems"]
    assert shared["systems"] == ["scratch", "gguf", "closed_book", "rag", "ngram-1", "ngram-2", "scratch@init"]
    assert shared["items"] == 25
    assert shared["rates"]["rag"]["all"]["accuracy"]["estimate"] == 1.0
    assert shared["rates"]["closed_book"]["all"]["accuracy"]["n"] == 25
    [rag_vs_closed] = [c for c in shared["comparisons"] if (c["a"], c["b"], c["group"]) == ("rag", "closed_book", "all")]
    # closed_book is right on every eighth item: 13 of the sample's 25 (every fourth item).
    assert rag_vs_closed["mcnemar"]["a_only"] == 12 and rag_vs_closed["mcnemar"]["b_only"] == 0
    # Here the GGUF's results are its twin's: the same rank on every item of the full set, not just the sample.
    assert shared["agreement"]["gguf"]["same_rank"] == 1.0 and shared["agreement"]["gguf"]["n"] == 100
    family = numbers["comparisons"] + shared["comparisons"]
    p = min(c["mcnemar"]["p_value"] for c in family)
    assert min(c["mcnemar"]["p_holm"] for c in family) == pytest.approx(min(1.0, len(family) * p))


def test_the_headline_gives_closed_book_and_rag_their_memorisation_rate_with_its_n(data):
    _, numbers = probe_report.section(data, seed=0)
    manifest = type("Run", (), {"metrics": {"train_run": "train/t"}})()
    cells = probe_report.stored(numbers, manifest, {"scratch": "train/t"})
    memorised = numbers["paired_systems"]["rates"]["rag"]["memorisation"]["accuracy"]
    assert set(cells) == {"scratch", "closed_book", "rag"}
    assert f"n={memorised['n']}" in cells["rag"] and "the 25 items every probed system scored" in cells["rag"]
