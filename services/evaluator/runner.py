"""Asking a system the benchmark: which questions, which served model, the resumable answer journal
and fact recall@k; the ``eval-<system>`` stage that uses them is services/evaluator/stages/eval.py."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from services.evaluator.scoring.normalize import normalize
from services.evaluator.settings import EvaluatorSettings
from shared import log as shared_log
from shared import runs
from shared.errors import InvalidInput
from shared.manifest import InputRef
from shared.runs import RunNotFound
from shared.schemas.eval import BenchmarkItem, Response, RetrievedChunk
from shared.store import ArtifactStore

log = logging.getLogger(__name__)

# A system answers a question with (response, retrieved chunks or None, latency in seconds).
Answer = Callable[[str], tuple[str, list[RetrievedChunk] | None, float]]


def select(items: list[BenchmarkItem], limit: int | None) -> list[BenchmarkItem]:
    """The first ``limit`` questions taken round-robin across categories, so a quick run sees all of them."""
    if limit is None or limit >= len(items):
        return items
    queues: dict[str, list[BenchmarkItem]] = defaultdict(list)
    for item in items:
        queues[item.category].append(item)
    chosen: list[BenchmarkItem] = []
    while len(chosen) < limit:
        for queue in queues.values():
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    return chosen


def _plain(text: str) -> str:
    return " " + re.sub(r"[^\w]+", " ", normalize(text)).strip() + " "


def facts_in_context(facts: list[str], chunks: list[RetrievedChunk]) -> list[bool]:
    """Whether each key fact occurs, normalised, in the retrieved chunks (for fact recall@k)."""
    context = "".join(_plain(c.text) for c in chunks)
    return [_plain(f) in context for f in facts]


# The closed-book control: the RAG generator with the §9.3 prompt less its context, so the report
# can separate what retrieval adds from what the generator already knows.
CLOSED_BOOK_PROMPT = (
    "You are a helpful assistant answering questions about ALS (amyotrophic lateral sclerosis). If you do not "
    "know enough to answer, say so.\n\nQuestion: {query}\n\nAnswer:"
)


def scratch_model(store: ArtifactStore, settings: EvaluatorSettings,
                  serve_run: str | None = None) -> tuple[str, list[InputRef]]:
    """The served from-scratch model's tag and the ``serve`` run it comes from (``serve_run``, else the latest)."""
    if settings.eval.scratch_model and not serve_run:
        return settings.eval.scratch_model, []
    try:
        serve = runs.resolve(store, serve_run or "serve")
    except RunNotFound:
        raise RunNotFound(
            f"no published serve run {serve_run or ''} in {store.description}; run `als-lm export ollama` first "
            "(or name a served model with ALS_EVAL__SCRATCH_MODEL)"
        ) from None
    if serve.stage != "serve":
        raise RunNotFound(f"{serve_run!r} is a {serve.stage} run, not a serve run")
    tag = next((t for t in serve.metrics.get("tags", []) if t.endswith(":latest")), None)
    if tag is None:
        raise InvalidInput(f"serve run {serve.run} records no `latest` tag in its metrics: {serve.metrics.get('tags')}")
    return tag, runs.inputs_from(serve, ["report.json"])


def questions_sha256(items: list[BenchmarkItem]) -> str:
    """What the asking depends on in the benchmark: the ids and question texts, not the key facts or
    reference answers, so a corrected key fact re-scores the stored answers without asking again."""
    return hashlib.sha256(json.dumps([[i.id, i.question] for i in items]).encode()).hexdigest()


@contextmanager
def exclusive(path: Path, waiting: str):
    """Hold an advisory lock on ``path``; a second process asking the same questions waits, then finds
    the run published (and skips) instead of asking them all again beside the first."""
    with open(path, "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info(waiting)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ask_all(items: list[BenchmarkItem], open_system: Callable[[], Answer], system: str, model: str,
            journal: Path) -> list[Response]:
    """Every item's response, in item order. Each answer is appended to ``journal`` as it comes, so an
    interrupted run asks only the questions it had not answered (generation is greedy and seeded, and
    the journal lives under the run's fingerprint: the same model, options and questions)."""
    done: dict[str, Response] = {}
    if journal.exists():
        for line in journal.read_text(encoding="utf-8").splitlines():
            try:
                response = Response.model_validate_json(line)
            except ValueError:
                continue  # the line a kill cut short
            done[response.id] = response
        wanted = {i.id for i in items}
        done = {k: v for k, v in done.items() if k in wanted}
        if done:
            log.info("%s: resuming, %d of %d questions already answered", system, len(done), len(items))
    todo = [item for item in items if item.id not in done]
    if todo:
        answer = open_system()
        with shared_log.progress() as bar, open(journal, "a", encoding="utf-8") as out:
            if out.tell() and not journal.read_bytes().endswith(b"\n"):
                out.write("\n")  # end the line a kill cut short, so the next answer starts its own
            task = bar.add_task(f"asking {system}", total=len(items), completed=len(done))
            for item in todo:
                text, retrieved, seconds = answer(item.question)
                done[item.id] = Response(id=item.id, response=text, latency_s=round(seconds, 4), system=system,
                                         model=model, retrieved=retrieved)
                out.write(done[item.id].model_dump_json() + "\n")
                out.flush()
                os.fsync(out.fileno())
                bar.advance(task)
    return [done[item.id] for item in items]


def retrieval_quality(items: list[BenchmarkItem], responses: list[Response], k: int) -> dict:
    """Per question: which key facts the top-k chunks contained; overall: fact recall@k."""
    rows = []
    for item, response in zip(items, responses):
        found = facts_in_context(item.fact_texts, response.retrieved or [])
        rows.append({"id": item.id, "category": item.category, "facts_in_context": found,
                     "recall": sum(found) / len(found), "chunk_ids": [c.chunk_id for c in response.retrieved or []]})
    facts = [f for row in rows for f in row["facts_in_context"]]
    return {
        "k": k,
        "items": rows,
        "summary": {
            "fact_recall": round(sum(facts) / len(facts), 4),
            "mean_item_recall": round(sum(r["recall"] for r in rows) / len(rows), 4),
            "items_with_all_facts": sum(all(r["facts_in_context"]) for r in rows),
            "items": len(rows),
        },
    }
