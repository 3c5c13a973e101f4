"""The headline figures of a score file (``score.summarize``), checked against counts made by hand on
four hand-built item scores, so each figure's numerator, denominator and filter is pinned."""

from __future__ import annotations

import pytest

from services.evaluator import stats
from services.evaluator.score import summarize
from shared.schemas.eval import FactMatch, ItemScore


def _fact(verdict: str, *, counted: bool = True, method: str | None = None, rejected: str | None = None):
    return FactMatch(fact=f"{verdict} {method}", present=verdict == "supported", verdict=verdict, counted=counted,
                     method=method, rejected=rejected)


def _item(id_: str, category: str, accuracy: float, facts: list[FactMatch], *, hedged: bool = False,
          fabricated: tuple[str, ...] = (), **extra) -> ItemScore:
    return ItemScore(id=id_, category=category, accuracy=accuracy, facts=facts,
                     facts_present=[f.present for f in facts], fabricated_entities=list(fabricated),
                     hedging={"hedged": hedged, "refusal": False, "count": int(hedged), "cues": ["may"] * hedged},
                     **extra)


ITEMS = [
    # correct: both counted facts supported; an uncounted one is judged, not scored
    _item("A", "drug_treatment", 1.0, [_fact("supported", method="exact"), _fact("supported", method="tokens"),
                                      _fact("supported", counted=False, method="exact")],
          hedged=True, fabricated=("NCT01", "Zorbex")),
    # one of two counted facts contradicted; a yes/no answered as expected
    _item("B", "drug_treatment", 0.5, [_fact("supported", method="numeric"),
                                      _fact("contradicted", method="numeric", rejected="other_value")],
          facts_contradicted=1, answer=_fact("supported", method="answer"), fabricated=("NCT01",)),
    # an empty response to a trap that goes on to answer it (counts as answered), one fact rejected
    _item("C", "gene_mutation", 0.0, [_fact("absent", method="fuzzy", rejected="negation")],
          non_answer=True, trap="answered"),
    # a declined trap: correct although its one fact is absent
    _item("D", "gene_mutation", 1.0, [_fact("absent")], trap="declined"),
]


def _interval(values: list[float]) -> dict:
    return stats.bootstrap_mean(values).model_dump(mode="json")


def test_summary_counts_rates_and_intervals_over_the_right_items_and_facts():
    s = summarize(ITEMS)
    assert s["n_items"] == 4
    assert s["accuracy"] == pytest.approx(2.5 / 4) and s["accuracy_interval"] == _interval([1.0, 0.5, 0.0, 1.0])
    assert s["accuracy_by_category"] == {"drug_treatment": 0.75, "gene_mutation": 0.5}
    assert s["correct_rate"] == 0.5 and s["correct_rate_interval"] == _interval([1.0, 0.0, 0.0, 1.0])
    assert (s["facts_total"], s["facts_counted"], s["facts_present"], s["facts_contradicted"]) == (7, 6, 3, 1)
    assert s["facts_by_verdict"] == {"supported": 3, "contradicted": 1, "absent": 2}
    assert s["contradicted_rate"] == pytest.approx(1 / 6)
    assert s["contradicted_rate_interval"] == _interval([0.0, 0.5, 0.0, 0.0])  # per item, over counted facts
    assert s["items_with_contradiction"] == 1
    assert s["facts_by_method"] == {"exact": 2, "tokens": 1, "numeric": 1}  # present facts, counted or not
    assert s["facts_rejected"] == {"other_value": 1, "negation": 1}
    assert s["yes_no_answers"] == {"supported": 1}
    assert s["fabrication_rate"] == 0.5 and s["fabrication_rate_interval"] == _interval([1.0, 1.0, 0.0, 0.0])
    assert list(s["fabricated_entities"].items()) == [("NCT01", 2), ("Zorbex", 1)]  # most frequent first
    assert s["hedging"]["hedged_rate"] == 0.25 and s["hedging"]["cues"] == {"may": 1}
    assert s["non_answers"] == 1
    assert s["traps"] == {"n": 2, "declined": 1, "denied": 0, "answered": 1,
                          "avoided_rate_interval": _interval([0.0, 1.0])}
    assert s["accuracy_by_hedging"] == {"hedged": _interval([1.0]), "not_hedged": _interval([0.5, 0.0, 1.0])}
    assert "echo_baseline" not in s


def test_echo_baseline_scores_the_questions_own_facts():
    echo = [(0.5, [_fact("supported"), _fact("absent"), _fact("supported", counted=False)]), (0.0, [_fact("absent")])]
    baseline = summarize(ITEMS, echo)["echo_baseline"]
    assert baseline == {"accuracy": 0.25, "accuracy_interval": _interval([0.5, 0.0]),
                        "facts_present": 1, "facts_counted": 3}


def test_one_contradicted_fact_of_one_is_a_full_contradiction_and_avoided_traps_are_counted():
    alone = summarize([_item("E", "x", 0.0, [_fact("contradicted")], facts_contradicted=1)])
    assert alone["contradicted_rate"] == 1.0 and alone["contradicted_rate_interval"] == _interval([1.0])
    denied = _item("F", "gene_mutation", 1.0, [_fact("supported")], trap="denied")
    assert summarize([*ITEMS[2:], denied])["traps"]["avoided_rate_interval"] == _interval([0.0, 1.0, 1.0])
