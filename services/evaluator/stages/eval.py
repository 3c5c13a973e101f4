"""The ``eval-<system>`` stages (``als-lm eval run``): ask one system every benchmark question.

``eval-scratch`` asks the from-scratch model served by Ollama (the tag comes from the named ``serve``
run, else the latest) through its chat template; ``eval-scratch_base`` asks the same model raw, as a
base model, k-shot (services/evaluator/base_condition.py), and publishes every prompt; ``eval-rag``
asks the RAG baseline and also records which chunks it retrieved and whether they contained each key
fact (``retrieval.json``, fact recall@k); ``eval-closed_book``
asks the RAG generator the same questions without any context. Generation is greedy with a fixed
seed. A run's fingerprint holds only what the answers depend on: the questions asked (ids and
texts, not the key facts), the model's digest, the options except the thread count, for RAG the
index and, for the base condition, the prompts' hash (they hold the shots' reference answers); so a rerun with the same model is skipped, a new model is asked again, and a key-fact
correction only re-scores.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from tokenizers import Tokenizer

from services.evaluator import base_condition
from services.evaluator.inputs import load_benchmark
from services.evaluator.rag import generate
from services.evaluator.rag.pipeline import latest_index, open_rag
from services.evaluator.runner import (
    CLOSED_BOOK_PROMPT,
    Answer,
    ask_all,
    exclusive,
    questions_sha256,
    retrieval_quality,
    scratch_model,
    select,
)
from services.evaluator.settings import EvaluatorSettings, chosen_system
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import InputRef, Manifest
from shared.runs import RunWriter
from shared.schemas.export import ExportReport
from shared.store import ArtifactStore


def without_context(client, model: str, opts: dict, template: str = "{query}") -> Callable[[], Answer]:
    """The from-scratch model, or the RAG generator closed-book: each question put into ``template``
    and asked directly; the model is loaded only when the run goes ahead."""
    def open_system() -> Answer:
        generate.load(client, model)

        def answer(question: str) -> tuple[str, None, float]:
            text, seconds = generate.answer(client, model, template.format(query=question), opts)
            return text, None, seconds
        return answer
    return open_system


def raw_prompts(client, model: str, opts: dict, by_question: dict[str, str]) -> Callable[[], Answer]:
    """The from-scratch model as a base model: each question's prepared prompt sent raw (no template)."""
    def open_system() -> Answer:
        generate.load(client, model)

        def answer(question: str) -> tuple[str, None, float]:
            text, seconds = generate.answer(client, model, by_question[question], opts, raw=True)
            return text, None, seconds
        return answer
    return open_system


def base_prompts(store: ArtifactStore, serve_inputs: list[InputRef], items, settings: EvaluatorSettings
                 ) -> tuple[dict[str, str], int, list[InputRef]]:
    """The base condition's prompts, the model's context length, and the export outputs they come from (its
    tokenizer counts the tokens, its report gives the context)."""
    if not serve_inputs:
        raise InvalidInput("the base condition counts prompt tokens with the served model's tokenizer: name a "
                           "serve run (--serve-run) instead of ALS_EVAL__SCRATCH_MODEL")
    export = runs.resolve(store, runs.resolve(store, serve_inputs[0].run).upstream("export"))
    inputs = runs.inputs_from(export, ["hf/tokenizer.json", "report.json"])
    with tempfile.TemporaryDirectory(dir=settings.work_dir) as tmp:
        tokenizer = Tokenizer.from_file(str(runs.fetch(store, inputs[0], Path(tmp) / "tokenizer.json")))
        report = ExportReport.model_validate_json(runs.fetch(store, inputs[1], Path(tmp) / "report.json").read_text())
    context = report.gpt_config["block_size"]
    prompts = base_condition.prompts(items, settings.eval, settings.seed,
                                     lambda text: len(tokenizer.encode(text).ids), context)
    return prompts, context, inputs


def answer_options(opts: dict) -> dict:
    """The generation options the answers depend on: the thread count is not one of them (measured
    byte-identical with 1 and 2 threads: docs/benchmarks.md, RAG threads)."""
    return {k: v for k, v in opts.items() if k != "num_thread"}


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    """Ask ``settings.eval.system`` every selected question. What is cheap to learn (the model's
    digest, the index run) decides whether to run; models and indexes are loaded only when the run
    goes ahead."""
    cfg = settings.eval
    system = chosen_system(settings)
    items = select(load_benchmark(cfg.benchmark), cfg.limit)
    derived: dict = {}
    prompts: dict[str, str] = {}
    if system in ("scratch", "scratch_base"):
        model, inputs = scratch_model(store, settings, cfg.serve_run)  # a missing serve run, before the server
        if system == "scratch_base":
            Path(settings.work_dir).mkdir(parents=True, exist_ok=True)
            prompts, context, export_inputs = base_prompts(store, inputs, items, settings)
            inputs += export_inputs
            derived["prompts_sha256"] = hashlib.sha256(json.dumps(prompts, sort_keys=True).encode()).hexdigest()
        client = generate.connect(settings.ollama_host)
        digest = generate.require(client, model, "create it with `als-lm export ollama`")
        opts = generate.options(settings.seed, cfg.max_tokens, cfg.num_thread)
        if system == "scratch":
            open_system = without_context(client, model, opts)
        else:
            opts |= {"num_ctx": context, "stop": base_condition.STOP}
            open_system = raw_prompts(client, model, opts, {i.question: prompts[i.id] for i in items})
    else:  # rag and closed_book: the RAG generator, with and without the retrieved context
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
            open_system = without_context(client, model, opts, CLOSED_BOOK_PROMPT)
    stage = f"eval-{system}"
    fingerprinted = stages.fingerprint_settings(stage, settings, system=system, model=model,
                                                model_digest=digest, options=answer_options(opts),
                                                limit=cfg.limit,
                                                questions_sha256=questions_sha256(items), **derived)
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
        if prompts:
            writer.put_json("prompts.json", prompts)
            used = [base_condition.shots_used(p) for p in prompts.values()]
            writer.metrics.update(shots_min=min(used), shots_mean=round(sum(used) / len(used), 2))
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
