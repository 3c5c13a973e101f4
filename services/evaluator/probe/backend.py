"""What the probe needs from a model: the log-likelihood of candidate completions after a stem, and its greedy
continuation. Every system the probe compares (the from-scratch checkpoint in-process, its exported GGUF, an n-gram
model of the training split, the RAG generator closed-book or with retrieved chunks) answers these two questions,
so the same items are scored the same way on each (the lm-evaluation-harness convention)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


class ProbeBackend(Protocol):
    name: str

    def loglikelihoods(self, context: str, continuations: list[str]) -> list[float]:
        """Natural-log probability of each continuation's tokens after the context: context and context +
        continuation are tokenised whole and the continuation's tokens are those after the context's."""
        ...

    def greedy(self, context: str, max_tokens: int) -> str:
        """The model's greedy continuation of the context, at most ``max_tokens`` tokens."""
        ...


@runtime_checkable
class BatchedBackend(Protocol):
    """A backend that scores many items in one call (the in-process model: many stems per forward)."""

    def loglikelihoods_many(self, requests: list[tuple[str, list[str]]]) -> list[list[float]]:
        """``loglikelihoods(context, continuations)`` of each request, in order."""
        ...

    def greedy_many(self, contexts: list[str], max_tokens: int) -> list[str]:
        """``greedy(context, max_tokens)`` of each context, in order."""
        ...
