"""Fact exposure: document counts per key fact in each split, and the buckets the report groups by."""

from __future__ import annotations

import pytest

from services.evaluator.exposure import bucket, exposure, item_bucket
from shared.schemas.corpus import CleanDocument
from shared.schemas.eval import BenchmarkItem
from shared.schemas.experiment import FactExposure


def doc(i: int, text: str) -> CleanDocument:
    return CleanDocument(id=f"d{i}", source="sample", category="research", title="", text=text)


def item(facts, id_="q1") -> BenchmarkItem:
    return BenchmarkItem(id=id_, category="gene_mutation", question="Which gene?", reference_answer="x",
                         key_facts=facts, source="test")


@pytest.mark.parametrize(("train", "val", "expected"), [
    (0, 0, "unseen"), (0, 3, "validation_only"), (1, 0, "1"), (2, 0, "2-4"), (4, 9, "2-4"), (5, 0, "5+"),
])
def test_bucket_boundaries(train, val, expected):
    assert bucket(train, val) == expected


def test_counts_documents_not_occurrences_and_only_whole_words():
    train = [doc(1, "SOD1 mutations. SOD1 again."), doc(2, "The sod1 gene."), doc(3, "SOD10 is not it.")]
    [result] = exposure([item(["SOD1"])], train, [])
    assert result.facts[0].train_docs == 2
    assert result.facts[0].bucket == "2-4"


def test_normalisation_matches_the_scorers_spelling_variants():
    """TDP-43 and TARDBP normalise to one token, as the scorer reads them."""
    [result] = exposure([item(["TDP-43"])], [doc(1, "Aggregates of TARDBP protein.")], [])
    assert result.facts[0].train_docs == 1


def test_fact_only_in_validation_and_fact_nowhere_are_marked():
    train, val = [doc(1, "Riluzole is a glutamate antagonist.")], [doc(2, "Edaravone is a free radical scavenger.")]
    [result] = exposure([item(["free radical scavenger", "antisense oligonucleotide", "riluzole"])], train, val)
    by_fact = {f.fact: f for f in result.facts}
    assert by_fact["free radical scavenger"].bucket == "validation_only"
    assert by_fact["free radical scavenger"].validation_docs == 1
    assert by_fact["antisense oligonucleotide"].bucket == "unseen"
    assert by_fact["riluzole"].bucket == "1"


def test_an_alias_counts_as_the_fact():
    facts = [{"text": "Radicava", "aliases": ["edaravone"]}]
    [result] = exposure([item(facts)], [doc(1, "Edaravone was approved.")], [])
    assert result.facts[0].train_docs == 1


def test_item_bucket_is_its_median_fact_over_counted_facts():
    facts = [FactExposure(fact=f, train_docs=n, validation_docs=0, bucket=bucket(n, 0))
             for f, n in (("a", 0), ("b", 1), ("c", 7))]
    assert item_bucket(facts, [True, True, True]) == "1"
    assert item_bucket(facts, [False, True, True]) == "1"  # lower median of (1, 5+)
    assert item_bucket(facts, [False, False, True]) == "5+"
    assert item_bucket(facts, [False, False, False]) == "1"  # no counted fact: all of them
