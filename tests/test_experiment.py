"""``als-lm experiment`` end to end with tiny settings: kept checkpoints each exported, served under
their own tag, asked and scored; RAG and the closed-book control; experiment.json linking every run
by id; and a rerun that pairs each checkpoint with its own runs even when one stage reruns."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from shared import runs
from shared.schemas.eval import Response
from shared.schemas.experiment import ExperimentResult
from shared.store import LocalStore

pytestmark = pytest.mark.slow

SMOKE = {
    "sources": ["sample"], "device": "cpu", "threads": 1, "limit": 3, "alone_threads": 2, "seeds": [1337, 7],
    # bf16 as experiment-cpu.yaml trains: the probe snapshots are bf16, the exported weights fp32
    "train": {"preset": "tiny", "device": "cpu", "precision": "bf16", "max_steps": 12, "micro_batch": 4, "grad_accum": 1, "lr": 3e-3, "min_lr": 3e-4,
              "warmup_steps": 2, "log_interval": 3, "eval_interval": 3, "eval_batches": 2,
              "checkpoint_interval": 1000, "early_stopping_patience": 0, "keep_at_fractions": [0.5, 1.0],
              "probe_at_fractions": [0.25, 0.75]},
    "export": {"quants": ["Q8_0"], "default_quant": "Q8_0", "ppl_max_tokens": 512},
    "eval": {"max_tokens": 8, "num_thread": 1},
    "probe": {"rag_items": 2},  # ~20 s of one core per RAG item (docs/probe.md)
}


def experiment(root, config, timeout=1200):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", "experiment", "--config", str(config), "--root", str(root)],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return proc


def result_of(store) -> ExperimentResult:
    run = runs.latest(store, "experiment")
    return ExperimentResult.model_validate_json(store.get_bytes(run.output("experiment.json").key))


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("experiment")
    config = root / "smoke.yaml"
    config.write_text(yaml.safe_dump(SMOKE))
    proc = experiment(root, config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "als-lm explore --root" in " ".join((proc.stdout + proc.stderr).split())  # rich wraps long lines
    return root, config, LocalStore(root / "artifacts")


def test_every_kept_checkpoint_is_exported_served_asked_and_scored_by_id(done):
    _, _, store = done
    result = result_of(store)
    assert [c.step for c in result.checkpoints] == [6, 12]
    tags = set()
    for c in result.checkpoints:
        export = runs.resolve(store, c.export_run)
        assert export.settings["export"]["checkpoint"] == c.name
        assert export.inputs[0].key.endswith(f"checkpoints/{c.name}/model.pt") or any(
            i.key.endswith(f"checkpoints/{c.name}/model.pt") for i in export.inputs)
        serve = runs.resolve(store, c.serve_run)
        assert {i.run for i in serve.inputs} == {c.export_run}
        eval_run = runs.resolve(store, c.eval_run)
        assert {i.run for i in eval_run.inputs} == {c.serve_run}
        assert runs.resolve(store, c.score_run).metrics["eval_run"] == c.eval_run
        base = runs.resolve(store, c.base_eval_run)  # the same served model, asked raw, k-shot
        assert base.upstream("serve") == c.serve_run and base.upstream("export") == c.export_run
        assert runs.resolve(store, c.base_score_run).metrics["eval_run"] == c.base_eval_run
        tags |= set(serve.metrics["tags"])
    assert len(tags) == 2 * len(result.checkpoints), "each checkpoint is served under its own tags"
    assert result.systems["scratch"] == result.checkpoints[-1].score_run
    assert result.systems["scratch_base"] == result.checkpoints[-1].base_score_run


def test_every_seed_is_trained_and_probed_at_every_point_and_the_report_draws_the_curve(done):
    root, _, store = done
    result = result_of(store)
    main = runs.resolve(store, result.train_run)
    [other] = [runs.resolve(store, r) for r in result.seed_train_runs]
    assert (main.settings["seed"], other.settings["seed"]) == (1337, 7)
    assert other.settings["train"] == main.settings["train"]  # the seeds share the config
    assert [s["step"] for s in other.metrics["snapshots"]] == [3, 9]
    snapshot = torch.load(io.BytesIO(store.get_bytes(other.output("snapshots/step00000003/model.pt").key)))
    assert {v.dtype for v in snapshot["model"].values()} == {torch.bfloat16}  # the weights the forward used
    # the second seed trained in its own background lane, beside the first seed's checkpoints
    timings = json.loads((root / "timings.json").read_text())["stages_s"]
    assert timings["training seed 7 (background)"] > 0 and "training seed 7" not in timings
    assert f"published {other.run}" in (root / "work" / "logs" / "seeds.log").read_text()
    probe = runs.resolve(store, result.probe_run)
    assert probe.metrics["train_runs"] == [main.run, other.run] and probe.metrics["seeds"] == [1337, 7]
    curve = json.loads(store.get_bytes(probe.output("summary.json").key))["curve"]
    assert [p["step"] for p in curve] == [0, 3, 6, 9, 12] and all(p["seeds"] == [1337, 7] for p in curve)
    report = runs.latest(store, "report")
    assert report.output("charts/probe_curve.png").size > 0
    text = store.get_bytes(report.output("report.md").key).decode()
    assert "Probe accuracy@1 by exposure bucket against training tokens" in text
    headline = text.split("## About this report")[0]
    assert "Stored or not (the likelihood probe" in headline and "mean over seeds (1337, 7)" in headline


def test_closed_book_asks_the_rag_generator_without_context(done):
    _, _, store = done
    result = result_of(store)
    closed = runs.resolve(store, runs.resolve(store, result.systems["closed_book"]).metrics["eval_run"])
    rag = runs.resolve(store, runs.resolve(store, result.systems["rag"]).metrics["eval_run"])
    assert closed.settings["model_digest"] == rag.settings["model_digest"]
    assert closed.inputs == [] and "Context" not in closed.settings["prompt"]
    path = store.get_bytes(closed.output("responses.jsonl").key).decode().splitlines()
    responses = [Response.model_validate_json(line) for line in path]
    assert len(responses) == 3 and all(r.retrieved is None and r.system == "closed_book" for r in responses)


def test_baselines_are_asked_once_in_the_background_while_the_model_trains(done):
    root, _, store = done
    timings = json.loads((root / "timings.json").read_text())["stages_s"]
    assert timings["rag index (background)"] > 0 and "rag index" not in timings, "indexed beside training, once"
    assert timings["probe rag (background)"] > 0, "the RAG generator's probe ran beside training"
    assert len(runs.runs(store, "probe-rag")) == 1, "the foreground found it by fingerprint"
    log = (root / "work" / "logs" / "baselines.log").read_text()
    assert "rag-index: published" in log and "probe-rag: published" in log
    # After the checkpoints the background is stopped (alone_threads) once the index and the probe are done (with
    # these tiny settings, before it asks anything) and the foreground finds what it published by fingerprint, or
    # resumes what it left from the journal, with another thread count.
    assert len(runs.runs(store, "eval-rag")) == 1 and len(runs.runs(store, "eval-closed_book")) == 1
    for stage in ("eval-rag", "eval-closed_book"):
        responses = store.get_bytes(runs.latest(store, stage).output("responses.jsonl").key).decode().splitlines()
        assert len(responses) == 3


def test_exposure_covers_every_question(done):
    _, _, store = done
    result = result_of(store)
    assert len(result.exposure) == 152
    assert all(len(e.facts) >= 1 for e in result.exposure)


def test_explore_serves_the_final_checkpoint_and_refuses_a_folder_without_results(done, tmp_path):
    from als_lm.explore import final_model

    _, _, store = done
    result = result_of(store)
    final = runs.resolve(store, result.checkpoints[-1].serve_run)
    assert final_model(store) in final.metrics["tags"] and final_model(store).endswith(":latest")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALS_")}
    proc = subprocess.run([sys.executable, "-m", "als_lm", "explore", "--root", str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode != 0 and "holds no local store" in proc.stderr


def test_rerun_skips_everything_and_pairs_each_checkpoint_with_its_own_runs(done):
    root, config, store = done
    first = result_of(store)
    # Unpublish the first checkpoint's score run: the rerun must score that checkpoint's answers
    # again, not those of the latest eval-scratch run (the final checkpoint's).
    doomed = first.checkpoints[0].score_run
    store.delete(f"{doomed}/manifest.json")
    # Every stage but the score of that checkpoint and the two that read it (experiment.json, the report):
    # corpus, tokenizer, index, training, export, serve, both conditions asked and scored, both baselines.
    upstream = set(runs.stages(store)) - {"score-scratch", "experiment", "report"}
    assert {"export", "serve", "eval-rag", "eval-scratch_base", "probe-scratch", "probe-gguf", "probe-rag"} <= upstream
    before = {stage: {r.run for r in runs.runs(store, stage)} for stage in upstream}
    proc = experiment(root, config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    second = result_of(store)
    rescored = second.checkpoints[0].score_run
    assert rescored != doomed
    assert runs.resolve(store, rescored).metrics["eval_run"] == first.checkpoints[0].eval_run
    assert [c.eval_run for c in second.checkpoints] == [c.eval_run for c in first.checkpoints]
    for stage, published in sorted(before.items()):  # nothing trained, exported, served or asked again
        assert {r.run for r in runs.runs(store, stage)} == published, f"the rerun ran {stage} again"
    assert {r.run for r in runs.runs(store, "score-scratch")} == {
        c.score_run for c in first.checkpoints[1:]} | {rescored}, "only the unpublished score ran again"


def test_a_checkpoint_that_fails_to_export_is_named_and_the_finished_ones_kept(done):
    """Runs last: it corrupts the first kept checkpoint's weights in the store."""
    root, config, store = done
    first = result_of(store)
    broken = first.checkpoints[0]
    train = runs.resolve(store, first.train_run)
    store.put_bytes(train.output(f"checkpoints/{broken.name}/model.pt").key, b"not the weights")
    store.delete(f"{broken.export_run}/manifest.json")
    proc = experiment(root, config)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert f"checkpoint {broken.name} of {first.train_run}" in out and "corrupted" in out
    finished = first.checkpoints[1]
    assert runs.verify(store, runs.resolve(store, finished.score_run)) == []
