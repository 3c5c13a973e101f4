"""The base-model condition's prompts: the separator first, k other items fixed per seed, never the item's own."""

from __future__ import annotations

import pytest

from services.evaluator import base_condition
from services.evaluator.inputs import load_benchmark
from services.evaluator.settings import BENCHMARK, EvalConfig
from shared.errors import InvalidInput

ITEMS = load_benchmark(BENCHMARK)


def _words(text: str) -> int:
    return len(text.split())


def test_every_item_gets_the_same_k_shots_of_its_seed_and_never_its_own_answer():
    cfg = EvalConfig(base_shots=3, max_tokens=1)
    prompts = base_condition.prompts(ITEMS, cfg, 7, _words, 100_000)
    pool = base_condition.shots(ITEMS, 3, 7)
    assert len(pool) == 4 and pool == base_condition.shots(ITEMS, 3, 7) != base_condition.shots(ITEMS, 3, 8)
    for item in ITEMS:
        text = prompts[item.id]
        assert text.startswith(base_condition.SEPARATOR + "Question: ")
        assert text.endswith(f"Question: {item.question}\nAnswer:")
        assert item.reference_answer not in text
        assert base_condition.shots_used(text) == 3
        shown = [s for s in pool if f"Question: {s.question}\nAnswer: {s.reference_answer}\n\n" in text]
        assert shown == [s for s in pool if s.id != item.id][:3]
    outside = next(i for i in ITEMS if i not in pool)
    assert all(f"Answer: {s.reference_answer}" in prompts[outside.id] for s in pool[:3])


def test_shots_farthest_from_the_question_go_first_when_the_context_is_short():
    cfg = EvalConfig(base_shots=3, max_tokens=10)
    item = next(i for i in ITEMS if i not in base_condition.shots(ITEMS, 3, 0))
    full = base_condition.prompts([item], cfg, 0, _words, 100_000)[item.id]
    short = base_condition.prompts([item], cfg, 0, _words, _words(full) + 9)[item.id]
    assert base_condition.shots_used(short) == 2 and full.endswith(short.removeprefix(base_condition.SEPARATOR))
    with pytest.raises(InvalidInput, match=f"item {item.id}: .*max_tokens"):
        base_condition.prompts([item], cfg, 0, _words, 10)
    none = base_condition.prompts([item], EvalConfig(base_shots=0), 0, _words, 100_000)[item.id]
    assert none == f"{base_condition.SEPARATOR}Question: {item.question}\nAnswer:"
