"""The base-model condition (issue 23): the from-scratch model asked as the base model it is.

The served chat template puts a system prompt and ``User:``/``Assistant:`` turns before the question,
a form its corpus never contains, so answers through it measure the template as much as the model.
Here the model reads text shaped like its training data: raw (no system prompt, no template), the
document separator it saw before every training document first, then ``k`` other benchmark items as
question and reference answer, then the question; generation stops where the model starts the next
question.

The k items are drawn once per seed (``random.Random(seed)``) from the whole benchmark, with one
spare: the item that is itself one of the k is shown the spare instead, so no item sees its own
answer and every other item sees the same k. Shots that would leave less than ``max_tokens`` of the
model's context for the answer are left out, the one farthest from the question first; the stage
publishes every prompt (``prompts.json``).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from services.evaluator.inputs import load_benchmark
from services.evaluator.settings import EvalConfig
from shared.errors import InvalidInput
from shared.schemas.eval import BenchmarkItem

SEPARATOR = "<|eos|>"
"""The tokenizer's document separator (services/processor/tokenizer.py writes it after every document,
with no <|bos|>), so a prompt that starts with it starts where every training document started."""
STOP = ["\nQuestion:"]


def shots(items: list[BenchmarkItem], k: int, seed: int) -> list[BenchmarkItem]:
    """The k shot items of this seed, plus the spare."""
    if k == 0:
        return []
    if len(items) <= k:
        raise InvalidInput(f"{k} shots need at least {k + 1} benchmark items; the benchmark has {len(items)}")
    return random.Random(seed).sample(items, k + 1)


def block(question: str, answer: str | None = None) -> str:
    """One question; with its answer, a finished shot. The prompt ends at "Answer:" without the space: the
    byte-level BPE writes a word with its leading space (services/exporter/settings.py, TEMPLATE)."""
    return f"Question: {question}\nAnswer:" + ("" if answer is None else f" {answer}\n\n")


def prompt(item: BenchmarkItem, pool: list[BenchmarkItem], k: int, fits: Callable[[str], bool]) -> str:
    """``item``'s prompt: the separator, the k shots that are not the item itself, the question; shots are
    dropped from the front until ``fits`` accepts it."""
    chosen = [s for s in pool if s.id != item.id][:k]
    while True:
        text = SEPARATOR + "".join(block(s.question, s.reference_answer) for s in chosen) + block(item.question)
        if fits(text):
            return text
        if not chosen:
            raise InvalidInput(f"item {item.id}: its question alone leaves no room for the answer in the model's "
                               "context; lower eval.max_tokens")
        chosen = chosen[1:]


def prompts(items: list[BenchmarkItem], cfg: EvalConfig, seed: int, count_tokens: Callable[[str], int],
            context: int) -> dict[str, str]:
    """Item id -> prompt, each leaving ``cfg.max_tokens`` of the ``context`` tokens for the answer. The shots
    come from the whole benchmark, so ``--limit`` asks a subset of the same prompts."""
    pool = shots(load_benchmark(cfg.benchmark), cfg.base_shots, seed)

    def fits(text: str) -> bool:
        return count_tokens(text) + cfg.max_tokens <= context

    return {item.id: prompt(item, pool, cfg.base_shots, fits) for item in items}


def shots_used(text: str) -> int:
    """How many shots a prompt kept."""
    return text.count("\nAnswer:") - 1
