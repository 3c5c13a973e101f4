"""``als-lm eval``, ``als-lm rag`` and ``als-lm report``: flags only; the stages are services/evaluator/stages/."""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from pathlib import Path

import click

from services.evaluator.settings import EvaluatorSettings
from shared.commands import FORCE, run_stage_command, settings_with
from shared.schemas.eval import BENCHMARK_CATEGORIES, SYSTEMS, categories_of
from shared.settings import load
from shared.store import open_store

SYSTEM = click.option("--system", type=click.Choice(SYSTEMS), help="Which system's responses.")


@click.group("eval")
def eval_group() -> None:
    """Run, score and review the hallucination benchmark (docs/evaluation.md)."""


@eval_group.command()
@click.option("--benchmark", type=click.Path(path_type=Path), default=None,
              help="Benchmark JSON (default: the bundled one, ALS_EVAL__BENCHMARK).")
@click.option("--corpus", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Corpus text (documents separated by blank lines) to list the key facts it never states "
                   "(default: the latest process run's corpus.txt in the store, when there is one).")
def validate(benchmark: Path | None, corpus: Path | None) -> None:
    """Check a benchmark and list the key facts the corpus never states (RAG cannot retrieve them).

    Checked: fields, unique ids, 1-5 non-blank key facts, known categories, an as_of date on every
    volatile item, expected_answer exactly on yes/no items.
    """
    from services.evaluator.coverage import absent_facts, latest_corpus
    from services.evaluator.inputs import load_benchmark
    from services.evaluator.score import corpus_documents
    from shared.runs import RunNotFound

    settings = settings_with(EvaluatorSettings, eval={"benchmark": benchmark})
    path = settings.eval.benchmark
    items = load_benchmark(path, report=settings.work_dir / "problems" / f"{path.name}.txt")
    counts = Counter(i.category for i in items)
    click.echo(f"{path}: {len(items)} valid items, " + ", ".join(f"{c} {counts[c]}" for c in categories_of(counts)))
    other = [c for c in categories_of(counts) if c not in BENCHMARK_CATEGORIES]
    if other:
        click.echo(f"  categories beyond the design's six (reported as they are): {', '.join(other)}")
    extras = Counter(name for i in items for name in i.model_extra or {})
    if extras:
        click.echo("  fields kept as they are (not scored): " + ", ".join(f"{n} ({k})" for n, k in sorted(extras.items())))
    if any(i.trap for i in items):
        click.echo(f"  {sum(i.trap for i in items)} trap item(s): scored on whether the answer declines or denies")
    facts = [f for i in items for f in i.key_facts]
    click.echo(f"  {len(facts)} key facts ({sum(f.counted for f in facts)} counted), "
               f"{sum(i.answer_type == 'yes_no' for i in items)} yes/no, "
               f"{sum(i.volatile for i in items)} volatile (dated), "
               f"{sum(not i.answerable for i in items)} not answerable from the bundled corpus")
    with tempfile.TemporaryDirectory() as scratch:
        if corpus is None:
            try:
                run, corpus = latest_corpus(open_store(settings.store), Path(scratch) / "corpus.txt")
            except RunNotFound as err:
                click.echo(f"key facts not checked against a corpus ({err}); or give --corpus FILE")
                return
            where = f"{run.run}/corpus.txt"
        else:
            where = str(corpus)
        absent = absent_facts(items, corpus_documents(corpus))
    click.echo(f"key facts the corpus never states ({where}): {len(absent)} of {len(facts)} "
               f"({sum(a.counted for a in absent)} counted)")
    for a in absent:
        notes = [n for n, on in (("not counted", not a.counted), ("item answerable=false", not a.answerable)) if on]
        click.echo(f"  {a.item_id} key fact {a.index}: {a.text}" + (f" ({', '.join(notes)})" if notes else ""))


@eval_group.command()
@SYSTEM
@click.option("--benchmark", type=click.Path(path_type=Path), default=None, help="File mode: benchmark JSON.")
@click.option("--responses", type=click.Path(path_type=Path), default=None,
              help="File mode: JSONL of {id, response}.")
@click.option("--output", type=click.Path(path_type=Path), default=None, help="File mode: scores JSON to write.")
@click.option("--corpus", type=click.Path(exists=True, path_type=Path), default=None,
              help="File mode: corpus text for the fabrication lexicon (documents separated by blank lines).")
@click.option("--eval-run", default=None,
              help="Store mode: the eval run to score ('eval-<system>/<run_id>'; default: the latest).")
@FORCE
def score(system: str | None, benchmark: Path | None, responses: Path | None, output: Path | None,
          corpus: Path | None, eval_run: str | None, force: bool) -> None:
    """Score responses: facts present (accuracy), fabricated names, hedging (docs/evaluation.md).

    File mode: --benchmark Q.json --responses R.jsonl --output S.json.
    Store mode: --system scratch|rag|closed_book scores the latest eval-<system> run (or --eval-run)
    and publishes score-<system>.
    """
    settings = settings_with(EvaluatorSettings, eval={"benchmark": benchmark, "system": system,
                                                      "eval_run": eval_run})
    if system:
        if responses or output or corpus:
            raise click.UsageError("--system (store mode) takes no --responses/--output/--corpus")
        from services.evaluator.stages import score as stage

        run_stage_command(stage.run, settings, force)
        return
    if not (responses and output):
        raise click.UsageError("give --system (store mode) or --responses and --output (file mode)")
    from services.evaluator.score import score_files

    scores = score_files(settings.eval, settings.eval.benchmark, responses, corpus,
                         report=output.with_name(f"{output.name}.problems.txt"))
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written whole to a temporary file and renamed: a failure never leaves a half-written output.
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(scores.model_dump(mode="json"), fh, indent=2)
    os.replace(tmp, output)
    s = scores.summary
    click.echo(f"{output}: {s['n_items']} items, accuracy {s['accuracy']:.3f}, "
               f"fabrication rate {s['fabrication_rate']:.3f}, hedged {s['hedging']['hedged_rate']:.3f}"
               + (f", non-answers {s['non_answers']} ("
                  + ", ".join(f"{n} {why}" for why, n in s["non_answers_by_reason"].items()) + ")"
                  if s["non_answers"] else "")
               + (f", traps avoided {s['traps']['n'] - s['traps']['answered']}/{s['traps']['n']}" if s["traps"]["n"]
                  else ""))


@eval_group.command()
@click.option("--system", type=click.Choice(["scratch", "rag"]), required=True)
@click.option("--reviewer", default=lambda: os.environ.get("USER", ""), help="Name stored with each review.")
def review(system: str, reviewer: str) -> None:
    """Review a reproducible random sample of responses with the failure taxonomy (docs/evaluation.md)."""
    from services.evaluator.stages import review as stage

    settings = settings_with(EvaluatorSettings, eval={"system": system, "reviewer": reviewer})
    run_stage_command(stage.run, settings, False,
                      lambda m: f"{m.metrics['reviewed']} of {m.metrics['sample']} sampled responses reviewed")


@click.command()
@FORCE
def report(force: bool) -> None:
    """Write the scratch-vs-RAG comparison report: Markdown, self-contained HTML and PNG charts."""
    from services.evaluator.stages import report as stage

    run_stage_command(stage.run, load(EvaluatorSettings), force)


@click.group()
def rag() -> None:
    """Build the retrieval index (ChromaDB) for the RAG baseline (docs/rag.md)."""


@eval_group.command("run")
@click.option("--system", type=click.Choice(SYSTEMS), required=True,
              help="Which system to ask: scratch_base is the from-scratch model asked raw, k-shot, as a base model; "
              "closed_book is the RAG generator without the retrieved context.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Only the first N questions, taken round-robin across categories (a quick run).")
@click.option("--serve-run", default=None, help="scratch, scratch_base: the serve run whose model to ask "
              "('serve/<run_id>'; default: the latest).")
@FORCE
def run_cmd(system: str, limit: int | None, serve_run: str | None, force: bool) -> None:
    """Ask one system every benchmark question -> eval-<system> (responses.jsonl, latency, retrieved chunks)."""
    from services.evaluator.stages import eval as stage

    if serve_run and system not in ("scratch", "scratch_base"):
        raise click.UsageError("--serve-run names the from-scratch model: use it with --system scratch or "
                               "scratch_base")
    settings = settings_with(EvaluatorSettings, eval={"system": system, "limit": limit, "serve_run": serve_run})
    _, manifest, _ = run_stage_command(stage.run, settings, force)
    m = manifest.metrics
    click.echo(f"{m['questions']} questions to {m['model']}, median latency {m['latency_p50_s']:.2f} s"
               + (f", exact-word fact recall@k {m['fact_recall_at_k']:.3f}" if "fact_recall_at_k" in m else ""))


@rag.command("index")
@FORCE
def rag_index(force: bool) -> None:
    """Chunk, embed and index the latest clean corpus -> rag-index (chunks.jsonl, chroma/)."""
    from services.evaluator.rag.embeddings import Embedder
    from services.evaluator.rag.pipeline import open_collection
    from services.evaluator.stages import rag_index as stage

    settings = load(EvaluatorSettings)
    store, manifest, _ = run_stage_command(stage.run, settings, force)
    m = manifest.metrics
    click.echo(f"{m['chunks']} chunks of {m['documents']} documents, {m['tokens_per_s']:.0f} tokens/s embedded")
    if settings.rag.chroma_mode == "server":
        collection = open_collection(store, settings, Embedder(settings.rag.embedding_model), manifest)
        click.echo(f"Chroma at {settings.rag.chroma_url}: collection {collection.name!r} holds "
                   f"{collection.count()} chunks of {manifest.run}")


@rag.command("ask")
@click.argument("question")
@click.option("--top-k", type=click.IntRange(min=1), default=None, help="Chunks to retrieve (ALS_RAG__TOP_K).")
def rag_ask(question: str, top_k: int | None) -> None:
    """Answer one question from the retrieved chunks and list the sources it was given."""
    from services.evaluator.rag.pipeline import open_rag

    settings = settings_with(EvaluatorSettings, rag={"top_k": top_k})
    answer, retrieved, seconds = open_rag(open_store(settings.store), settings).ask(question)
    click.echo(answer or "(empty answer)")
    click.echo(f"\nSources ({settings.rag.generator_model}, {seconds:.1f} s):")
    for i, chunk in enumerate(retrieved, 1):
        click.echo(f"  [{i}] {chunk.title or 'untitled'} ({chunk.source_id}, distance {chunk.distance:.3f})")


@click.group("probe")
def probe_group() -> None:
    """Probe what a model stores: cloze items scored by likelihood (docs/probe.md)."""


@probe_group.command("items")
@FORCE
def probe_items(force: bool) -> None:
    """Cut cloze items from the benchmark's key facts and the latest corpus -> probe-items (items.jsonl)."""
    from services.evaluator.stages import probe_items as stage

    _, manifest, _ = run_stage_command(stage.run, load(EvaluatorSettings), force)
    m = manifest.metrics
    click.echo(f"{m['items']} items of {m['facts']} key facts ({m['candidates']} candidates each), "
               f"{m['unseen_facts']} facts unseen in training; by form {m['by_form']}")


@probe_group.command("run")
@click.option("--train-run", default=None, help="The train run to probe ('train/<run_id>'; default: the latest).")
@click.option("--seed-run", "seed_runs", multiple=True,
              help="A train run of the same config with another seed, probed beside it (repeatable).")
@click.option("--items-run", default=None, help="The probe-items run ('probe-items/<run_id>'; default: the latest).")
@FORCE
def probe_run(train_run: str | None, seed_runs: tuple[str, ...], items_run: str | None, force: bool) -> None:
    """Score the items in process at every kept checkpoint and probe snapshot of each seed's train run, and on
    n-gram baselines -> probe-scratch."""
    from services.evaluator.stages import probe as stage

    settings = settings_with(EvaluatorSettings, probe={"train_run": train_run, "items_run": items_run,
                                                       "seed_runs": list(seed_runs) or None})
    _, manifest, _ = run_stage_command(stage.run, settings, force)
    m = manifest.metrics
    click.echo(f"{m['items']} items, chance {m['chance']:.3f}; accuracy@1 "
               + ", ".join(f"{name} {value:.3f}" for name, value in m["accuracy"].items()))


@probe_group.command("gguf")
@click.option("--scratch-run", default=None,
              help="The probe-scratch run to compare with ('probe-scratch/<run_id>'; default: the latest); its items "
              "and train run are the ones scored.")
@click.option("--export-run", "export_runs", multiple=True,
              help="An export run to score ('export/<run_id>'; repeat; default: the latest of each checkpoint).")
@click.option("--gguf", default=None, help="The GGUF variant to score (default f32; f16 or an exported quantization).")
@FORCE
def probe_gguf(scratch_run: str | None, export_runs: tuple[str, ...], gguf: str | None, force: bool) -> None:
    """Score the items on each checkpoint's exported GGUF through llama.cpp, against the in-process probe -> probe-gguf."""
    from services.evaluator.stages import probe_gguf as stage

    chosen = {"scratch_run": scratch_run, "export_runs": list(export_runs) or None, "gguf": gguf}
    _, manifest, _ = run_stage_command(stage.run, settings_with(EvaluatorSettings, probe=chosen), force)
    m = manifest.metrics
    for name, accuracy in m["accuracy"].items():
        click.echo(f"{name}: accuracy@1 {accuracy:.3f} on {m['items']} items; same rank as in process on "
                   f"{100 * m['same_rank'][name]:.1f} %, max |Δ log-likelihood| "
                   f"{m['max_abs_loglikelihood_difference'][name]:.2g}")


@probe_group.command("rag")
@click.option("--items-run", default=None, help="The probe-items run ('probe-items/<run_id>'; default: the latest).")
@click.option("--items", "rag_items", type=click.IntRange(min=1), default=None,
              help="Score a seeded sample of this many items, stratified by form and exposure bucket (default: all).")
@FORCE
def probe_rag(items_run: str | None, rag_items: int | None, force: bool) -> None:
    """Score the items on the RAG generator closed-book and with its retrieved chunks -> probe-rag."""
    from services.evaluator.stages import probe_rag as stage

    chosen = {"items_run": items_run, "rag_items": rag_items}
    _, manifest, _ = run_stage_command(stage.run, settings_with(EvaluatorSettings, probe=chosen), force)
    m = manifest.metrics
    click.echo(f"{m['items']} of {m['of_items']} items, {m['median_context_tokens']} context tokens (median) with "
               f"retrieval; accuracy@1 " + ", ".join(f"{name} {value:.3f}" for name, value in m["accuracy"].items()))
