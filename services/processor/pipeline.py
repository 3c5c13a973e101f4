"""The processing pipeline's frame, after datatrove: documents stream through a list of steps.

Each step sees one document at a time and returns it (maybe changed) or ``None``; whatever it
removes — a document, a paragraph, a sentence — goes to the exclusion log with the step's name
and a reason, and every count lands in one ``Stats`` object that ``stats.md`` is written from.
Steps that keep no state across documents run in worker processes; the others run in order in
the main process, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import json
import multiprocessing
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import IO, Any

import numpy as np

from shared.schemas.corpus import CleanDocument

# What "token" means before a tokenizer exists: a word, hyphen/apostrophe compounds kept whole.
WORD = re.compile(r"\w+(?:[-'’]\w+)*")


def words(text: str) -> list[str]:
    return WORD.findall(text)


@dataclass
class Document:
    id: str
    source: str
    category: str
    title: str
    text: str
    signature: np.ndarray | None = field(default=None, repr=False)

    def clean(self) -> CleanDocument:
        """What ``train.jsonl`` / ``val.jsonl`` hold: written through the shared schema, so the
        processor and its readers (tokenizer, RAG, exposure) agree on one contract."""
        return CleanDocument(id=self.id, source=self.source, category=self.category, title=self.title,
                             text=self.text)


class Stats:
    """Counters per step: ``documents_in``/``_out``, ``<unit>s_removed:<reason>``, ``documents_changed:<why>``."""

    def __init__(self) -> None:
        self.steps: dict[str, Counter] = defaultdict(Counter)

    def count(self, step: str, key: str, n: int = 1) -> None:
        self.steps[step][key] += n

    def merge(self, other: dict[str, Counter]) -> None:
        for step, counts in other.items():
            self.steps[step].update(counts)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {step: dict(sorted(c.items())) for step, c in self.steps.items()}


class RunLog:
    """Where steps report: the counters and the exclusion sink (a file, or a list in a worker)."""

    def __init__(self, excluded: IO[str] | list[dict[str, Any]]):
        self.stats = Stats()
        self.excluded = excluded
        # CPU seconds per step, summed over workers; kept out of stats.json so outputs stay reproducible.
        self.seconds: Counter[str] = Counter()

    def count(self, step: str, key: str, n: int = 1) -> None:
        self.stats.count(step, key, n)

    def exclude(self, step: str, unit: str, reason: str, doc_id: str, text: str, **extra: Any) -> None:
        """Record a removal; a removed document keeps only a preview, paragraphs and sentences in full."""
        self.count(step, f"{unit}s_removed:{reason}")
        record = {"step": step, "unit": unit, "reason": reason, "doc_id": doc_id,
                  "text": text[:300] if unit == "document" else text, **extra}
        self.write(record)

    def write(self, record: dict[str, Any]) -> None:
        if isinstance(self.excluded, list):
            self.excluded.append(record)
        else:
            self.excluded.write(json.dumps(record, ensure_ascii=False) + "\n")


class Step:
    """One job over one document: return it (possibly changed) or ``None`` after ``log.exclude``."""

    name = "step"
    # False for steps that compare a document with the ones before it (deduplication).
    stateless = True

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        raise NotImplementedError

    def __call__(self, docs: Iterable[Document], log: RunLog) -> Iterator[Document]:
        for doc in docs:
            log.count(self.name, "documents_in")
            start = time.process_time()
            out = self.apply(doc, log)
            log.seconds[self.name] += time.process_time() - start
            if out is not None:
                log.count(self.name, "documents_out")
                yield out


def chain(steps: list[Step], docs: Iterable[Document], log: RunLog) -> Iterator[Document]:
    for step in steps:
        docs = step(docs, log)
    return docs


_worker_steps: list[Step] = []


def _init_worker(steps: list[Step]) -> None:
    global _worker_steps
    _worker_steps = steps


def _run_batch(batch: list[Document]) -> tuple[list[Document], dict[str, Counter], list[dict[str, Any]], Counter]:
    records: list[dict[str, Any]] = []
    log = RunLog(records)
    out = list(chain(_worker_steps, batch, log))
    return out, dict(log.stats.steps), records, log.seconds


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(docs)
    while batch := list(islice(it, size)):
        yield batch


def run(steps: list[Step], docs: Iterable[Document], log: RunLog, workers: int = 1,
        batch_size: int = 64) -> Iterator[Document]:
    """Stream ``docs`` through ``steps``; the leading stateless steps fan out to ``workers`` processes."""
    n_parallel = next((i for i, s in enumerate(steps) if not s.stateless), len(steps))
    if workers <= 1 or n_parallel == 0:
        yield from chain(steps, docs, log)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(steps[:n_parallel],)) as pool:
        def parallel() -> Iterator[Document]:
            # imap keeps the input order, which keeps "first seen wins" dedup deterministic.
            for out, counts, records, seconds in pool.imap(_run_batch, _batches(docs, batch_size)):
                log.stats.merge(counts)
                log.seconds.update(seconds)
                for record in records:
                    log.write(record)
                yield from out

        yield from chain(steps[n_parallel:], parallel(), log)
