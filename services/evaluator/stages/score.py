"""The ``score-<system>`` stages (``als-lm eval score --system``): score the named ``eval-<system>``
run (else the latest) against the benchmark, with the latest ``process`` corpus as the fabrication
lexicon and the evidence for claims. The experiment names the run, so a skipped stage never pairs
the wrong ones."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from services.evaluator.inputs import load_benchmark, load_responses, match
from services.evaluator.score import (
    benchmark_input,
    build,
    build_claims,
    clean_documents,
    corpus_documents,
    document_names,
    score_responses,
)
from services.evaluator.scoring.entities import ENTITIES_FILE
from services.evaluator.settings import EvaluatorSettings, chosen_system
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.store import ArtifactStore

log = logging.getLogger(__name__)
SCORING = Path(__file__).resolve().parents[1] / "scoring"


def scorer_sha256() -> str:
    """The scoring rules' identity (every module, table and the entity list): a changed rule re-scores."""
    digest = hashlib.sha256()
    for path in sorted([*SCORING.glob("*.py"), ENTITIES_FILE]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def claim_metrics(summary: dict) -> dict:
    """The run's claim figures: counts, the hallucination rate and, for RAG, faithfulness."""
    def estimate(interval: dict) -> float | None:
        return None if interval["estimate"] is None else round(interval["estimate"], 4)

    c = summary["claims"]
    out = {"claims": c["n_claims"], "items_without_claims": c["n_items_without_claims"],
           "claims_contradicted": c["claims_by_verdict"]["contradicted"],
           "claims_unverifiable": c["claims_by_verdict"]["unverifiable"],
           "hallucination_rate": estimate(c["hallucination_rate"])}
    if f := summary.get("faithfulness"):
        out |= {"faithfulness": estimate(f["supported_by_context"]),
                "citation_correctness": estimate(f["citation_correctness"]), "citations": f["n_citations"],
                "context_precision": estimate(f["context_precision"]), "mrr": estimate(f["mrr"])}
    return out


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    config = settings.eval
    system = chosen_system(settings)
    benchmark = load_benchmark(config.benchmark)
    eval_run = runs.resolve(store, config.eval_run or f"eval-{system}")
    if eval_run.stage != f"eval-{system}":
        raise InvalidInput(f"{config.eval_run!r} is a {eval_run.stage} run, not an eval-{system} run")
    process_run = runs.latest(store, "process")
    inputs = [benchmark_input(config.benchmark), *runs.inputs_from(eval_run, ["responses.jsonl"]),
              *runs.inputs_from(process_run, ["corpus.txt", "train.jsonl"])]
    # The rest of the corpus, for claims and gold evidence: the held-out documents, when the run has them.
    held_out = [ref for ref in runs.inputs_from(process_run) if ref.name == "val.jsonl"]
    inputs += held_out

    def body(writer: RunWriter, scratch: Path) -> None:
        responses = load_responses(runs.fetch(store, eval_run.output("responses.jsonl"), scratch / "responses.jsonl"))
        corpus = runs.fetch(store, process_run.output("corpus.txt"), scratch / "corpus.txt")
        documents = runs.fetch(store, process_run.output("train.jsonl"), scratch / "train.jsonl")
        items = benchmark
        if eval_run.settings.get("limit"):
            answered = {r.id for r in responses}
            items = [i for i in benchmark if i.id in answered]
            log.info("%s answered %d of %d questions (limit=%s); scoring those", eval_run.run, len(items),
                     len(benchmark), eval_run.settings["limit"])
        pairs = match(items, responses)
        scorer, lexicon = build(config, corpus_documents(corpus), names=document_names(documents))
        held_out_files = [runs.fetch(store, ref, scratch / "val.jsonl") for ref in held_out]
        claims = build_claims(config, scorer, clean_documents([documents, *held_out_files]))
        scores = score_responses(pairs, scorer, lexicon, claims)
        writer.put_json("scores.json", scores.model_dump(mode="json"))
        if claims.gold:
            writer.put_bytes("gold_evidence.jsonl", "".join(g.model_dump_json() + "\n"
                                                            for g in claims.gold.values()).encode())
        summary = scores.summary
        writer.metrics.update(
            items=summary["n_items"], accuracy=round(summary["accuracy"], 4),
            correct_rate=round(summary["correct_rate"], 4),
            fabrication_rate=round(summary["fabrication_rate"], 4),
            hedged_rate=round(summary["hedging"]["hedged_rate"], 4), eval_run=eval_run.run,
            contradicted_rate=round(summary["contradicted_rate"], 4),
            echo_baseline_accuracy=round(summary["echo_baseline"]["accuracy"], 4),
        )
        writer.metrics.update(claim_metrics(summary))

    fingerprinted = stages.fingerprint_settings(f"score-{system}", settings, scorer_sha256=scorer_sha256())
    return runs.run_stage(store, f"score-{system}", fingerprinted, inputs, body,
                          work_dir=settings.work_dir, force=force)
