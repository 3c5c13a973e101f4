"""The ``experiment`` stage on hand-made runs: each named checkpoint is linked to its own export,
serve, eval and score runs (followed back through the manifests' inputs), never to a neighbour's."""

from __future__ import annotations

import json

import pytest

from services.evaluator.settings import EvaluatorSettings, for_run
from services.evaluator.stages import experiment
from shared import runs
from shared.errors import InvalidInput
from shared.schemas.experiment import ExperimentResult
from shared.settings import StoreSettings
from shared.store import LocalStore

KEPT = [{"name": "step-000006", "step": 6, "tokens_seen": 600, "train_loss": 5.0, "val_loss": 5.5},
        {"name": "step-000012", "step": 12, "tokens_seen": 1200, "train_loss": 4.0, "val_loss": 4.5}]


def _publish(store, stage: str, files: dict[str, str], work, inputs=(), metrics=None, settings=None):
    """A hand-made run; ``settings`` tells apart runs of one stage that skip-if-unchanged would merge."""
    def body(writer, scratch):
        for name, text in files.items():
            writer.put_bytes(name, text.encode())
        writer.metrics.update(metrics or {})
    return runs.run_stage(store, stage, settings or {}, list(inputs), body, work_dir=work)[0]


def _document(doc_id: str, text: str) -> str:
    return json.dumps({"id": doc_id, "source": "sample", "category": "educational", "title": "t", "text": text})


@pytest.fixture
def experiment_runs(tmp_path):
    """A train run with two kept checkpoints, each exported, served, asked and scored, and two baselines."""
    store, work = LocalStore(tmp_path / "store"), tmp_path / "work"
    process = _publish(store, "process", {"train.jsonl": _document("d1", "Riluzole inhibits glutamate release.") + "\n",
                                          "val.jsonl": _document("d2", "SOD1 was the first ALS gene.") + "\n"}, work)
    tokenize = _publish(store, "tokenize", {"train.bin": "tokens"}, work, runs.inputs_from(process))
    train = _publish(store, "train", {"metrics.csv": "step,train_loss\n", "checkpoints/x/model.pt": "w"}, work,
                     runs.inputs_from(tokenize), {"preset": "tiny", "params": 1000, "checkpoints": KEPT})
    scores, chains = {}, {}
    for kept in KEPT:
        name = kept["name"]
        export = _publish(store, "export", {"gguf/model.gguf": f"gguf of {name}"}, work, runs.inputs_from(train),
                          settings={"checkpoint": name})
        serve = _publish(store, "serve", {"report.json": json.dumps({"tag": name})}, work, runs.inputs_from(export))
        asked = _publish(store, "eval-scratch", {"responses.jsonl": json.dumps({"id": name, "response": "x"}) + "\n"},
                         work, runs.inputs_from(serve))
        scored = _publish(store, "score-scratch", {"scores.json": json.dumps({"of": name})}, work,
                          runs.inputs_from(asked), {"eval_run": asked.run, "accuracy": kept["step"] / 100})
        scores[name], chains[name] = scored.run, (export.run, serve.run, asked.run, scored.run)
    systems = {"scratch": scores[KEPT[-1]["name"]]}
    for system in ("rag", "closed_book"):
        asked = _publish(store, f"eval-{system}", {"responses.jsonl": f"{system}\n"}, work)
        systems[system] = _publish(store, f"score-{system}", {"scores.json": system}, work, runs.inputs_from(asked),
                                   {"eval_run": asked.run, "accuracy": 0.3}).run
    settings = EvaluatorSettings(store=StoreSettings(root=tmp_path / "store"), work_dir=work)
    return store, for_run(settings, train_run=train.run, checkpoint_scores=scores, system_scores=systems), chains


def test_each_checkpoint_is_linked_to_its_own_runs_and_an_unchanged_rerun_is_skipped(experiment_runs):
    store, settings, chains = experiment_runs
    first, last = chains.values()
    assert not set(first) & set(last), "the fixture's checkpoints have runs of their own"
    manifest, ran = experiment.run(store, settings)
    assert ran
    result = ExperimentResult.model_validate_json(store.get_bytes(manifest.output("experiment.json").key))
    assert [c.name for c in result.checkpoints] == [k["name"] for k in KEPT]
    for checkpoint in result.checkpoints:
        assert (checkpoint.export_run, checkpoint.serve_run, checkpoint.eval_run,
                checkpoint.score_run) == chains[checkpoint.name]
    assert result.systems == settings.eval.system_scores
    assert manifest.metrics["checkpoints"]["step-000012"] == {"tokens_seen": 1200, "accuracy": 0.12}
    assert experiment.run(store, settings)[1] is False


def test_the_stage_refuses_to_run_without_the_runs_to_link_or_with_an_unknown_checkpoint(experiment_runs):
    store, settings, _ = experiment_runs
    with pytest.raises(InvalidInput, match="eval.train_run"):
        experiment.run(store, for_run(settings, checkpoint_scores={}))
    unknown = {**settings.eval.checkpoint_scores, "step-999999": settings.eval.system_scores["scratch"]}
    with pytest.raises(InvalidInput, match="kept no checkpoint step-999999"):
        experiment.run(store, for_run(settings, checkpoint_scores=unknown))


def test_a_checkpoint_is_linked_to_its_base_condition_runs_only_when_they_asked_its_served_model(experiment_runs):
    store, settings, chains = experiment_runs
    work = settings.work_dir
    base = {}
    for name, (_, serve_run, _, _) in chains.items():
        asked = _publish(store, "eval-scratch_base", {"responses.jsonl": json.dumps({"id": name, "response": "r"})},
                         work, runs.inputs_from(runs.resolve(store, serve_run)))
        base[name] = (asked.run, _publish(store, "score-scratch_base", {"scores.json": name}, work,
                                          runs.inputs_from(asked)).run)
    linked = for_run(settings, checkpoint_base_scores={n: s for n, (_, s) in base.items()})
    manifest, _ = experiment.run(store, linked)
    result = ExperimentResult.model_validate_json(store.get_bytes(manifest.output("experiment.json").key))
    assert [(c.base_eval_run, c.base_score_run) for c in result.checkpoints] == [base[k["name"]] for k in KEPT]
    swapped = dict(zip(base, [s for _, s in reversed(list(base.values()))]))
    with pytest.raises(InvalidInput, match="not the served model"):
        experiment.run(store, for_run(settings, checkpoint_base_scores=swapped))


def test_the_probe_run_of_the_experiments_seeds_is_linked_and_one_of_another_train_run_refused(experiment_runs):
    store, settings, _ = experiment_runs
    work = settings.work_dir
    train = settings.eval.train_run
    probe = _publish(store, "probe-scratch", {"summary.json": "{}"}, work, settings={"of": train},
                     metrics={"train_run": train, "train_runs": [train, "train/seed-7"]})
    manifest, _ = experiment.run(store, for_run(settings, probe_run=probe.run))
    result = ExperimentResult.model_validate_json(store.get_bytes(manifest.output("experiment.json").key))
    assert (result.probe_run, result.seed_train_runs) == (probe.run, ["train/seed-7"])
    assert any(i.run == probe.run for i in manifest.inputs)
    other = _publish(store, "probe-scratch", {"summary.json": "{}"}, work, settings={"of": "another"},
                     metrics={"train_run": "train/another", "train_runs": ["train/another"]})
    with pytest.raises(InvalidInput, match="is not a probe-scratch run of"):
        experiment.run(store, for_run(settings, probe_run=other.run))
