"""The ``extract-measure`` stage: the main model and the extraction model (trained on the same shards plus
the QA text of the ``qa_exposed`` half) probed and asked in process at each kept checkpoint, on both halves,
paired on the same items (services/evaluator/extract/measure.py, docs/extract.md)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from services.evaluator import base_condition
from services.evaluator.extract import measure
from services.evaluator.inputs import load_benchmark
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.tokens import ProbeTokenizer
from services.evaluator.score import benchmark_input, build
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages.probe import read_items, resolve
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.settings import fingerprinted
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


def kept(train_run: Manifest) -> dict[str, dict]:
    return {c["name"]: c for c in train_run.metrics.get("checkpoints", [])}


def pair_runs(store: ArtifactStore, main: Manifest, extract: Manifest) -> tuple[Manifest, list[str]]:
    """The extraction run's QA run, and the checkpoints both runs kept; refuses two runs that differ in
    anything but the QA text (tokenizer, settings, kept steps)."""
    tokens = runs.resolve(store, extract.upstream("extract-tokens"))
    if tokens.upstream("tokenize") != main.upstream("tokenize"):
        raise InvalidInput(f"{extract.run} was not trained on {main.run}'s token shards plus QA text: "
                           f"its tokens come from {tokens.upstream('tokenize')}, the main run's from "
                           f"{main.upstream('tokenize')}")
    if extract.settings != main.settings:
        raise InvalidInput(f"{extract.run} and {main.run} were trained with different settings")
    names = [n for n in kept(main) if n in kept(extract)]
    if not names:
        raise InvalidInput(f"{main.run} and {extract.run} kept no checkpoint in common (train.keep_at_fractions)")
    return runs.resolve(store, tokens.upstream("extract-qa")), names


def code_sha256() -> str:
    digest = hashlib.sha256()
    for module in (measure, base_condition):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    cfg = settings.extract
    if not (cfg.main_train_run and cfg.extract_train_run):
        raise InvalidInput("extract-measure needs both train runs: extract.main_train_run and "
                           "extract.extract_train_run (als-lm experiment-extract names them)")
    main, extract = resolve(store, cfg.main_train_run, "train"), resolve(store, cfg.extract_train_run, "train")
    qa_run, names = pair_runs(store, main, extract)
    items_run = runs.resolve(store, qa_run.upstream("probe-items"))
    models = {"main": main, "extract": extract}
    inputs = [benchmark_input(settings.eval.benchmark), *runs.inputs_from(qa_run, ["split.json"]),
              *runs.inputs_from(items_run, ["items.jsonl"]), *runs.inputs_from(main, ["tokenizer.json"]),
              *(ref for run in models.values()
                for ref in runs.inputs_from(run, [f"checkpoints/{n}/model.pt" for n in names]))]

    def body(writer: RunWriter, scratch: Path) -> None:
        halves = json.loads(runs.fetch(store, qa_run.output("split.json"), scratch / "split.json").read_text())
        items = [i for i in read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
                 if i.benchmark_id in halves]
        benchmark = [b for b in load_benchmark(settings.eval.benchmark) if b.id in halves]
        tokenizer = ProbeTokenizer(runs.fetch(store, main.output("tokenizer.json"), scratch / "tokenizer.json"))
        scorer, lexicon = build(settings.eval, ())
        outcomes = []
        for label, run in models.items():
            for name in names:
                path = runs.fetch(store, run.output(f"checkpoints/{name}/model.pt"), scratch / "model.pt")
                backend = TorchBackend.from_checkpoint(f"{label}@{name}", path, tokenizer)
                outcomes += measure.probe_outcomes(backend, label, name, items, halves, settings.probe.greedy_tokens)
                outcomes += measure.qa_outcomes(backend, label, name, benchmark, halves, settings.eval,
                                                settings.seed, scorer, lexicon)
                log.info("extract-measure: %s %s probed on %d items and asked %d questions", label, name,
                         len(items), len(benchmark))
                path.unlink()
        summary = measure.summarise(outcomes, names, {i.id: i.benchmark_id for i in items}, seed=settings.seed)
        summary |= {"main_train_run": main.run, "extract_train_run": extract.run, "qa_run": qa_run.run,
                    "tokens_seen": {n: kept(main)[n]["tokens_seen"] for n in names},
                    "qa_pairs": qa_run.metrics.get("pairs"), "qa_dropped": qa_run.metrics.get("dropped")}
        writer.put_bytes("results.jsonl", "".join(o.model_dump_json() + "\n" for o in outcomes).encode())
        writer.put_json("summary.json", summary)
        last = names[-1]
        writer.metrics.update(
            checkpoints=names, probe_items=len(items), questions=len(benchmark),
            accuracy={key: rate["estimate"] for key, rate in summary["rates"].items() if f"|{last}|" in key},
            tests={t["name"]: {"difference": t["difference"]["estimate"], "p_holm": t["p_holm"]}
                   for t in summary["tests"]},
        )

    derived = {"asking": fingerprinted(settings.eval, "eval-scratch_base"),
               "scoring": fingerprinted(settings.eval, "score-scratch_base"), "code_sha256": code_sha256(),
               "greedy_tokens": settings.probe.greedy_tokens}
    fingerprint = stages.fingerprint_settings("extract-measure", settings, **derived)
    return runs.run_stage(store, "extract-measure", fingerprint, inputs, body, work_dir=settings.work_dir, force=force)
