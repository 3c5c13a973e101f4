"""The RAG probe's stratified sample: each (form, exposure bucket) stratum keeps its share, reproducibly."""

from __future__ import annotations

from collections import Counter

from services.evaluator.probe.sample import stratified
from shared.schemas.probe import ProbeItem

STRATA = {("memorisation", "5+"): 50, ("memorisation", "1"): 30, ("generalisation", "unseen"): 20}


def items() -> list[ProbeItem]:
    strata = [key for key, count in STRATA.items() for _ in range(count)]
    return [ProbeItem(id=f"q{n}.0.{form[:3]}", benchmark_id=f"q{n}", fact_index=0, fact="f", form=form, stem="a b c",
                      candidates=["x", "y"], answer=0, value_type="phrase", source="d", subject=None, in_train=True,
                      train_docs=0, validation_docs=0, bucket=bucket, wording_in_train=False)
            for n, (form, bucket) in enumerate(strata)]


def test_each_stratum_keeps_its_share_in_the_original_order():
    every = items()
    chosen = stratified(every, 10, seed=0)
    assert Counter((i.form, i.bucket) for i in chosen) == {k: v // 10 for k, v in STRATA.items()}
    positions = [every.index(i) for i in chosen]
    assert positions == sorted(positions)
    uneven = stratified(every, 11, seed=0)  # 5.5, 3.3, 2.2: the largest remainder gets the eleventh
    assert Counter((i.form, i.bucket) for i in uneven)[("memorisation", "5+")] == 6 and len(uneven) == 11


def test_the_sample_is_reproducible_and_the_seed_changes_it():
    every = items()
    assert stratified(every, 10, seed=0) == stratified(list(every), 10, seed=0)
    assert stratified(every, 10, seed=0) != stratified(every, 10, seed=1)
    assert stratified(every, None, seed=0) == every == stratified(every, 500, seed=0)
