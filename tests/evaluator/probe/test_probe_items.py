"""Probe items: cut from the corpus by general rules, deterministic, >= 9 same-type distractors, unseen facts
kept and labelled, exposure counted as subject-fact co-occurrence."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from services.evaluator.exposure import plain, question_subject
from services.evaluator.inputs import load_benchmark
from services.evaluator.probe.items import SHAPES, Corpus, build_items
from services.evaluator.settings import BENCHMARK
from shared.schemas.corpus import CleanDocument
from shared.schemas.eval import BenchmarkItem

SAMPLE = Path(__file__).resolve().parents[3] / "services" / "scraper" / "sample"
CATEGORY = {"clinical_trials": "clinical_trials", "educational": "educational", "narratives": "narrative",
            "research": "research", "supplementary": "supplementary"}


def sample_documents() -> list[CleanDocument]:
    docs = []
    for path in sorted(SAMPLE.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            raw = json.loads(line)
            docs.append(CleanDocument(id=raw["id"], source=raw["source"], category=CATEGORY[path.stem],
                                      title=raw["title"], text=raw["text"]))
    return docs


def split(docs: list[CleanDocument]) -> tuple[list[CleanDocument], list[CleanDocument]]:
    """Every tenth document held out, the rest for training."""
    return [d for i, d in enumerate(docs) if i % 10], [d for i, d in enumerate(docs) if not i % 10]


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return Corpus(*split(sample_documents()))


@pytest.fixture(scope="module")
def built(corpus):
    return build_items(load_benchmark(BENCHMARK), corpus, k=9, seed=0)


def test_items_are_deterministic_and_a_new_seed_draws_other_distractors(corpus, built):
    again = build_items(load_benchmark(BENCHMARK), corpus, k=9, seed=0)
    assert [i.model_dump() for i in again.items] == [i.model_dump() for i in built.items]
    other = build_items(load_benchmark(BENCHMARK), corpus, k=9, seed=1)
    assert [i.candidates for i in other.items] != [i.candidates for i in built.items]
    assert len(built.items) > 150 and {i.form for i in built.items} == {"memorisation", "generalisation"}


def test_every_item_has_nine_distinct_distractors_of_the_values_type(built):
    for item in built.items:
        true = item.candidates[item.answer]
        assert len(item.candidates) == 10 and len({c.lower() for c in item.candidates}) == 10, item.id
        if item.value_type in SHAPES:
            assert all(re.fullmatch(SHAPES[item.value_type], c) for c in item.candidates), item
        elif item.value_type == "quantity":
            unit = true.split(maxsplit=1)[1].split()[-1]
            assert all(c.split()[-1] == unit for c in item.candidates), item
        elif item.value_type == "phrase":
            assert {len(c.split()) for c in item.candidates} == {len(true.split())}, item
    types = {i.value_type for i in built.items}
    assert {"year", "drug", "gene", "phrase"} <= types, types


def test_memorisation_stems_are_training_text_and_their_value_follows(corpus, built):
    train = {doc_id: text for doc_id, text in corpus.train}
    memorised = [i for i in built.items if i.form == "memorisation"]
    assert memorised
    for item in memorised:
        assert f"{item.stem} {item.candidates[item.answer]}" in " ".join(train[item.source].split()), item.id
        assert item.in_train and item.wording_in_train


def test_generalisation_stems_come_from_the_reference_answer_or_held_out_text(corpus, built):
    benchmark = {b.id: b for b in load_benchmark(BENCHMARK)}
    held_out = {doc_id for doc_id, _ in corpus.validation}
    for item in (i for i in built.items if i.form == "generalisation"):
        if item.source == "reference_answer":
            assert item.stem in benchmark[item.benchmark_id].reference_answer
        else:
            assert item.source in held_out, item


def test_a_fact_no_training_document_states_stays_in_labelled_unseen(corpus):
    question = BenchmarkItem(
        id="x-1", category="gene_mutation", question="Which gene does riluzole act on?", source="test",
        reference_answer="In this made-up statement the answer is the gene ZZQ9 and nothing else.",
        key_facts=["ZZQ9"])
    [item] = build_items([question], corpus, k=9, seed=0).items
    assert item.form == "generalisation" and not item.in_train
    assert item.bucket == "unseen" and item.train_docs == 0
    assert item.value_type == "code" and item.candidates[item.answer] == "ZZQ9"


def test_exposure_counts_documents_where_subject_and_fact_co_occur(corpus, built):
    benchmark = {b.id: b for b in load_benchmark(BENCHMARK)}
    item = next(i for i in built.items if i.benchmark_id == "drug-001")
    assert item.subject == "riluzole" == question_subject(benchmark["drug-001"].question, corpus.train_plain,
                                                                 corpus.vocabulary)
    phrase = plain(item.fact)
    both = sum(" riluzole " in d and phrase in d for d in corpus.train_plain)
    alone = sum(phrase in d for d in corpus.train_plain)
    assert item.train_docs == both < alone
