"""``als-lm eval run``: ask one system every benchmark question and publish ``eval-<system>``.

``eval-scratch`` asks the from-scratch model served by Ollama (the tag comes from the named ``serve``
run, else the latest); ``eval-rag`` asks the RAG baseline and also records which chunks it retrieved
and whether they contained each key fact (``retrieval.json``, fact recall@k); ``eval-closed_book``
asks the RAG generator the same questions without any context. Generation is greedy with a fixed
seed. A run's fingerprint holds only what the answers depend on: the questions asked (ids and
texts, not the key facts), the model's digest, the options and, for RAG, the index; so a rerun with
the same model is skipped, a new model is asked again, and a key-fact correction only re-scores.
"""

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

from services.evaluator.inputs import load_benchmark
from services.evaluator.rag import generate
from services.evaluator.rag.pipeline import latest_index, open_rag
from services.evaluator.scoring.normalize import normalize
from services.evaluator.settings import EvaluatorSettings
from shared import log as shared_log
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import InputRef, Manifest
from shared.runs import RunNotFound, RunWriter
from shared.schemas.eval import SYSTEMS, BenchmarkItem, Response, RetrievedChunk
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


def run_eval(store: ArtifactStore, settings: EvaluatorSettings, system: str, limit: int | None = None,
             force: bool = False, serve_run: str | None = None) -> tuple[Manifest, bool]:
    """Ask ``system`` every selected question. What is cheap to learn (the model's digest, the index
    run) decides whether to run; models and indexes are loaded only when the run goes ahead."""
    cfg = settings.eval
    items = select(load_benchmark(cfg.benchmark), limit)
    derived: dict = {}
    if system == "scratch":
        model, inputs = scratch_model(store, settings, serve_run)
        client = generate.connect(settings.ollama_host)
        digest = generate.require(client, model, "create it with `als-lm export ollama`")
        opts = generate.options(settings.seed, cfg.max_tokens, cfg.num_thread)

        def open_system() -> Answer:
            generate.load(client, model)

            def answer(question: str) -> tuple[str, None, float]:
                text, seconds = generate.answer(client, model, question, opts)
                return text, None, seconds
            return answer

    elif system in ("rag", "closed_book"):
        model = settings.rag.generator_model
        client = generate.connect(settings.ollama_host)
        digest = generate.ensure_generator(client, model)
        opts = generate.options(settings.seed, cfg.max_tokens, cfg.num_thread, settings.rag.num_ctx)
        if system == "rag":
            index_run = latest_index(store)
            inputs = runs.inputs_from(index_run)

            def open_system() -> Answer:
                rag = open_rag(store, settings)
                if rag.index_run != index_run.run or rag.options != opts:
                    raise RuntimeError(f"the RAG index or options changed while the run started: {rag.index_run}")
                return rag.ask
        else:
            inputs = []
            derived["prompt"] = CLOSED_BOOK_PROMPT

            def open_system() -> Answer:
                generate.load(client, model)

                def answer(question: str) -> tuple[str, None, float]:
                    text, seconds = generate.answer(client, model, CLOSED_BOOK_PROMPT.format(query=question), opts)
                    return text, None, seconds
                return answer
    else:
        raise InvalidInput(f"unknown system {system!r}; choose one of {', '.join(SYSTEMS)}")
    fingerprinted = stages.fingerprint_settings(f"eval-{system}", settings, system=system, model=model,
                                                model_digest=digest, options=opts, limit=limit,
                                                questions_sha256=questions_sha256(items), **derived)

    stage = f"eval-{system}"
    journal = Path(settings.work_dir) / stage / runs.fingerprint(stage, fingerprinted, inputs)[:16]

    def body(writer: RunWriter, scratch: Path) -> None:
        responses = ask_all(items, open_system, system, model, journal / "answers.jsonl")
        path = scratch / "responses.jsonl"
        path.write_text("".join(r.model_dump_json() + "\n" for r in responses))
        writer.put_file("responses.jsonl", path)
        latencies = sorted(r.latency_s for r in responses)
        writer.metrics.update(questions=len(responses), model=model,
                              latency_p50_s=round(latencies[len(latencies) // 2], 3),
                              latency_mean_s=round(sum(latencies) / len(latencies), 3))
        if system == "rag":
            retrieval = retrieval_quality(items, responses, settings.rag.top_k)
            writer.put_json("retrieval.json", retrieval)
            writer.metrics["fact_recall_at_k"] = retrieval["summary"]["fact_recall"]

    journal.mkdir(parents=True, exist_ok=True)
    with exclusive(journal / "lock", f"another process is asking {stage} the same questions; waiting for it"):
        if force:
            (journal / "answers.jsonl").unlink(missing_ok=True)
        manifest, ran = runs.run_stage(store, stage, fingerprinted, inputs, body, work_dir=settings.work_dir,
                                       force=force)
        (journal / "answers.jsonl").unlink(missing_ok=True)  # published: the journal has served its purpose
    return manifest, ran


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
