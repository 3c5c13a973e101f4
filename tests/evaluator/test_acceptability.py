"""Non-answers (issue 24): word salad and loops state nothing, whatever on-topic words they hold. Real Gemma
through llama.cpp, real wordfreq; the readers' answer kinds on real answers (the development set the threshold
was set on) as the floor. The rule failed its validation on v3 and is off by default (``eval.use_acceptability``);
these tests check that it does what it says when turned on, and that off it changes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.evaluator.scoring.acceptability import Acceptability, repetitive
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.schemas.eval import BenchmarkItem, ItemScore, Response

DEV_ANSWERS = BENCHMARK.parent / "real_outputs" / "experiment-20261207b-answers"
# Written for this test in the shape a tiny model's greedy output takes (docs/evaluation.md): on-topic words,
# the fact's number, no statement.
SALAD = ("1995, and the most common in the riluzole in people with ALS. The primary endpoint, which is a single "
         "trial in the most common genetic cause of the drug was approved in the first treatment.")
ANSWER = "Riluzole was approved by the FDA in 1995; it modestly extends survival in people with ALS."


@pytest.fixture(scope="module")
def acceptability() -> Acceptability:
    """The scorer's own, with its on-disk cache (keyed by model and text, so a hit is the value it would compute)."""
    return Acceptability(EvalConfig().acceptability_threshold)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_loops_and_empty_text_need_no_model():
    offline = Acceptability(4.3, gguf=Path("/nonexistent.gguf"))
    assert offline.non_answer("q?", " \n") == "empty"
    assert offline.non_answer("q?", "the disease the disease the disease the disease the disease") == "repetition"
    assert repetitive("• in ALS, in ALS, in ALS, in ALS, in ALS, in ALS, in ALS")
    assert not repetitive("Riluzole and edaravone are the two drugs approved for ALS in most countries.")
    assert offline.non_answer("When was riluzole approved?", "May 2023.") is None  # too short to judge


def test_salad_is_garbled_and_a_sentence_on_the_same_words_is_an_answer(acceptability):
    question = "When was riluzole approved by the FDA?"
    assert acceptability.slor(question, SALAD) < acceptability.threshold < acceptability.slor(question, ANSWER)
    assert acceptability.non_answer(question, SALAD) == "garbled"
    assert acceptability.non_answer(question, ANSWER) is None


def test_rare_terms_do_not_make_a_sentence_garbled(acceptability):
    text = ("The C9orf72 hexanucleotide repeat expansion is the most common genetic cause of familial ALS and "
            "frontotemporal dementia.")
    assert acceptability.non_answer("What is the most common genetic cause of familial ALS?", text) is None


def test_the_readers_answer_kinds_on_the_development_answers(acceptability):
    """On the set the threshold was set on (a floor, not a validation): of the readers' 18 answers one is called a
    loop (a fluent answer that repeats a sentence), and of their 35 non-answers only the two short fragments and the
    bulleted echo of the question are missed."""
    pairs = _jsonl(DEV_ANSWERS / "pairs.jsonl")
    labels = {lab["pair_id"]: lab["verdict"] for lab in _jsonl(DEV_ANSWERS / "labels-1.jsonl")}
    kinds = {p["pair_id"]: acceptability.non_answer(p["question"], p["response"]) for p in pairs}
    answers = [i for i, lab in labels.items() if lab == "answer"]
    assert len(answers) >= 18 and sum(kinds[i] is not None for i in answers) <= 1
    said = [i for i, lab in labels.items() if lab == "non_answer"]
    assert len(said) >= 30 and sum(kinds[i] is None for i in said) <= 3


def test_a_value_is_read_from_disk_without_the_model(tmp_path, monkeypatch):
    from services.evaluator.scoring import acceptability as module

    cache = tmp_path / "slor.sqlite"
    first = Acceptability(4.3, cache=cache).slor("When was riluzole approved?", ANSWER)

    def unavailable(*_):
        raise AssertionError("the language model was loaded for a text already read")

    monkeypatch.setattr(module, "_language_model", unavailable)
    assert Acceptability(4.3, cache=cache).slor("When was riluzole approved?", ANSWER) == first
    with pytest.raises(AssertionError, match="already read"):  # a new text does need it
        Acceptability(4.3, cache=cache).slor("When was riluzole approved?", ANSWER + " Really.")


def test_a_garbled_response_states_no_fact_makes_no_claim_and_is_labelled_a_non_answer():
    from services.evaluator.score import build, build_claims, score_responses
    from services.evaluator.taxonomy import proxy_label

    config = EvalConfig(use_embeddings=False, use_acceptability=True)
    scorer, lexicon = build(config, ())
    claims = build_claims(config, scorer, [])
    item = BenchmarkItem(id="drug-x", question="When was riluzole approved by the FDA?", category="drug_treatment",
                         reference_answer="Riluzole was approved by the FDA in 1995.",
                         key_facts=["riluzole", "1995"], source="test")
    scores = score_responses([(item, Response(id="drug-x", response=SALAD))], scorer, lexicon, claims)
    [score] = scores.items
    assert score.non_answer and score.non_answer_reason == "garbled"
    assert {f.verdict for f in score.facts} == {"absent"} and score.claims == []
    assert proxy_label(score, SALAD, item.question) == ("incorrect", "non_answer")
    assert scores.summary["non_answers_by_reason"] == {"garbled": 1}
    [answered] = score_responses([(item, Response(id="drug-x", response=ANSWER))], scorer, lexicon, claims).items
    assert not answered.non_answer and answered.accuracy == 1.0 and answered.claims


def test_scores_written_before_reasons_read_as_empty_non_answers():
    old = {"id": "a", "category": "c", "facts_present": [], "accuracy": 0.0, "fabricated_entities": [],
           "hedging": {}, "facts": [], "non_answer": True}
    assert ItemScore.model_validate(old).non_answer_reason == "empty"
    with pytest.raises(ValueError, match="non_answer_reason"):
        ItemScore.model_validate({**old, "non_answer": False, "non_answer_reason": "garbled"})


def test_off_by_default_only_an_empty_response_is_a_non_answer():
    from services.evaluator.score import build

    assert not EvalConfig().use_acceptability
    scorer, _ = build(EvalConfig(use_embeddings=False), ())
    assert scorer.acceptability is None
    assert scorer.non_answer("When was riluzole approved by the FDA?", SALAD) is None
    assert scorer.non_answer("When was riluzole approved by the FDA?", "  ") == "empty"
