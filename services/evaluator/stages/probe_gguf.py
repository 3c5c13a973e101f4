"""The ``probe-gguf`` stage (``als-lm probe gguf``): the probe items scored on the exported GGUF of each
checkpoint through llama.cpp, and how far that agrees with the in-process probe of the same checkpoint
(docs/probe.md). The GGUF is read as the in-process model reads the stem (after ``<|eos|>``, cut from the left
to fit), so any difference is the export's and llama.cpp's."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from services.evaluator.probe.backends.llama import LlamaBackend
from services.evaluator.probe.score import agreement, score_item, summarise
from services.evaluator.settings import EvaluatorSettings
from services.evaluator.stages.probe import probe_sha256, read_items, resolve
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.probe import ProbeResult, ProbeSystem
from shared.store import ArtifactStore

log = logging.getLogger(__name__)


def checkpoint_of(export: Manifest) -> str | None:
    """The kept checkpoint an export run read (``checkpoints/<name>/model.pt``), None for the run's model.pt."""
    [weights] = [i for i in export.inputs if i.stage == "train" and i.name.endswith("model.pt")]
    return weights.name.split("/")[1] if weights.name.startswith("checkpoints/") else None


def system_names(checkpoint: str | None) -> tuple[str, str]:
    """The GGUF's system name and the in-process system of the same weights (probe-scratch's names)."""
    return (f"gguf@{checkpoint}", f"scratch@{checkpoint}") if checkpoint else ("gguf", "scratch")


def exports(store: ArtifactStore, refs: list[str], train: str) -> list[Manifest]:
    """The export runs named, or the latest export run of each checkpoint of ``train``; each must export
    ``train``, or its GGUF would be compared with another model's probe."""
    if refs:
        found = [resolve(store, ref, "export") for ref in refs]
    else:
        latest: dict[str | None, Manifest] = {}
        for m in runs.runs(store, "export"):
            if m.upstream("train") == train:
                latest[checkpoint_of(m)] = m
        found = list(latest.values())
    if not found:
        raise InvalidInput(f"no export run of {train}: run `als-lm export run` on its checkpoints first")
    for m in found:
        if m.upstream("train") != train:
            raise InvalidInput(f"{m.run} exports {m.upstream('train')}, not {train}, which the probe-scratch run "
                               "read: the GGUF would be compared with another model's probe")
    return found


def gguf_output(export: Manifest, variant: str) -> str:
    names = [o.name for o in export.outputs_under("gguf/")]
    found = [n for n in names if n.endswith(f"-{variant}.gguf")]
    if len(found) != 1:
        raise InvalidInput(f"{export.run} has no GGUF {variant!r} (ALS_PROBE__GGUF); it has: {', '.join(names)}")
    return found[0]


def run(store: ArtifactStore, settings: EvaluatorSettings, *, force: bool = False) -> tuple[Manifest, bool]:
    config = settings.probe
    scratch_run = resolve(store, config.scratch_run, "probe-scratch")
    items_run = runs.resolve(store, scratch_run.upstream("probe-items"))
    train = scratch_run.metrics["train_run"]  # the main run: the other seeds' runs are probed, never exported
    models = [(m, checkpoint_of(m), gguf_output(m, config.gguf)) for m in exports(store, config.export_runs, train)]
    if len({checkpoint for _, checkpoint, _ in models}) != len(models):
        raise InvalidInput("two of the export runs named export the same checkpoint: name one per checkpoint")
    inputs = [*runs.inputs_from(items_run, ["items.jsonl"]), *runs.inputs_from(scratch_run, ["results.jsonl"]),
              *(runs.inputs_from(m, [output])[0] for m, _, output in models)]
    threads = settings.eval.num_thread or os.cpu_count() or 1

    def body(writer: RunWriter, scratch: Path) -> None:
        items = read_items(runs.fetch(store, items_run.output("items.jsonl"), scratch / "items.jsonl"))
        path = runs.fetch(store, scratch_run.output("results.jsonl"), scratch / "scratch.jsonl")
        in_process: dict[str, list[ProbeResult]] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            if line:
                r = ProbeResult.model_validate_json(line)
                in_process.setdefault(r.system, []).append(r)
        results, systems, agreements = [], [], {}
        for export, checkpoint, output in models:
            name, twin = system_names(checkpoint)
            if twin not in in_process:
                raise InvalidInput(f"{scratch_run.run} scored no {twin}, the in-process twin of {export.run}")
            gguf = runs.fetch(store, export.output(output), scratch / "model.gguf")
            backend = LlamaBackend.from_gguf(gguf, name=name, threads=threads, as_trained=True)
            scored = [score_item(backend, item, greedy_tokens=config.greedy_tokens) for item in items]
            backend.llm.close()
            gguf.unlink()
            results += scored
            agreements[name] = {"export_run": export.run, "in_process": twin,
                                **agreement(scored, in_process[twin], seed=settings.seed)}
            systems.append(ProbeSystem(name=name, kind="gguf"))
            log.info("probe-gguf: %s scored on %d items; same rank as in process on %.1f %%", name, len(items),
                     100 * agreements[name]["same_rank"])
        summary = summarise(items, results, seed=settings.seed) | {"agreement": agreements, "gguf": config.gguf}
        writer.put_bytes("results.jsonl", "".join(r.model_dump_json() + "\n" for r in results).encode())
        writer.put_json("systems.json", [s.model_dump() for s in systems])
        writer.put_json("summary.json", summary)
        writer.metrics.update(
            items=len(items), items_run=items_run.run, scratch_run=scratch_run.run, gguf=config.gguf,
            accuracy={name: by["all"]["accuracy"]["estimate"] for name, by in summary["systems"].items()},
            same_rank={name: a["same_rank"] for name, a in agreements.items()},
            max_abs_loglikelihood_difference={name: a["max_abs_loglikelihood_difference"]
                                              for name, a in agreements.items()},
        )

    fingerprinted = stages.fingerprint_settings("probe-gguf", settings, probe_sha256=probe_sha256())
    return runs.run_stage(store, "probe-gguf", fingerprinted, inputs, body, work_dir=settings.work_dir, force=force)
