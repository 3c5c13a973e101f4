"""The probe stages end to end on the bundled sample: items published with a manifest and skipped when
unchanged, the trainer's model trained a few hundred steps scored in process at every kept checkpoint
beside its initialisation and the n-gram baselines, traced back through the store, reported."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from test_probe_items import sample_documents, split
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from services.evaluator.probe.backends.llama import LlamaBackend
from services.evaluator.probe.backends.torch_model import TorchBackend
from services.evaluator.probe.tokens import ProbeTokenizer
from services.evaluator.report import probe as probe_report
from services.evaluator.report.document import Chart, Table
from services.evaluator.settings import BENCHMARK, EvaluatorSettings
from services.evaluator.stages import probe, probe_gguf, probe_items
from services.evaluator.stages.probe_gguf import gguf_output
from services.evaluator.stats import paired_difference
from services.exporter.settings import ExporterSettings
from services.exporter.stages import export
from services.trainer.model import GPT, GPTConfig
from shared import runs
from shared.errors import InvalidInput
from shared.runs import RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.schemas.probe import ProbeItem, ProbeResult
from shared.store import LocalStore, sha256_file
from tests.evaluator.probe.tiny_trained import fit

STEPS = 300
# Two cores shared with other work: one intra-op thread avoids oversubscription (tests/trainer/conftest.py).
torch.set_num_threads(1)


def publish_corpus(store: LocalStore, tmp) -> None:
    """A process run of the sample split and a tokenize run of the same documents."""
    train, val = split(sample_documents())
    writer = RunWriter(store, "process", {"fixture": "probe"}, [])
    for name, docs in (("train.jsonl", train), ("val.jsonl", val)):
        writer.put_bytes(name, "".join(d.model_dump_json() + "\n" for d in docs).encode())
    process_run = writer.publish()
    tok = Tokenizer(models.BPE(unk_token="<|unk|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([d.text for d in train], trainers.BpeTrainer(
        vocab_size=1024, special_tokens=["<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tok.save(str(tmp / "tokenizer.json"))
    eos = tok.token_to_id("<|eos|>")
    counts = {}
    for name, docs in (("train.bin", train), ("val.bin", val)):
        ids = [i for enc in tok.encode_batch([d.text for d in docs]) for i in (*enc.ids, eos)]
        np.asarray(ids, dtype=np.uint16).tofile(tmp / name)
        counts[name] = len(ids)
    (tmp / "meta.json").write_text(TokenShardsMeta(
        vocab_size=tok.get_vocab_size(), eos_id=eos, bos_id=0, pad_id=2, n_train_tokens=counts["train.bin"],
        n_val_tokens=counts["val.bin"], tokenizer_sha256=sha256_file(tmp / "tokenizer.json")).model_dump_json())
    writer = RunWriter(store, "tokenize", {"fixture": "probe"}, runs.inputs_from(process_run, ["train.jsonl"]))
    for name in ("tokenizer.json", "train.bin", "val.bin", "meta.json"):
        writer.put_file(name, tmp / name)
    writer.publish()


def train_tiny(tmp, steps: int, keep: tuple[int, ...] = (), seed: int = 0) -> dict[int, dict]:
    """The trainer's GPT trained ``steps`` AdamW steps on the training tokens (a plain loop: DeepSpeed's
    start-up alone outlasts this test's budget on two shared cores); its state at ``keep`` (default: the
    half and the end)."""
    keep = keep or (steps // 2, steps)
    torch.manual_seed(seed)
    tokens = torch.from_numpy(np.fromfile(tmp / "train.bin", dtype=np.uint16).astype(np.int64))
    vocab = TokenShardsMeta.model_validate_json((tmp / "meta.json").read_text()).vocab_size
    config = GPTConfig(n_layer=2, n_head=4, n_embd=64, block_size=64, vocab_size=vocab, dropout=0.0)
    states = fit(GPT(config), tokens, steps, keep)
    return {step: {"config": config.to_dict(), "model": state} for step, state in states.items()}


def publish_train(store: LocalStore, tmp, kept: dict[int, dict], seed: int = 0, snapshots: tuple[int, ...] = ()):
    """A train run as the train stage publishes it: model.pt, the kept checkpoints, the probe snapshots at
    ``snapshots`` (the other steps of ``kept``) and their metrics."""
    tokenize = runs.latest(store, "tokenize")
    writer = RunWriter(store, "train", {"fixture": "probe", "seed": seed},
                       runs.inputs_from(tokenize, ["train.bin", "tokenizer.json"]))
    info = {"checkpoints": [], "snapshots": []}
    for step, state in kept.items():
        torch.save(state, tmp / f"step{step}.pt")
        listing = "snapshots" if step in snapshots else "checkpoints"
        writer.put_file(f"{listing}/step{step:08d}/model.pt", tmp / f"step{step}.pt")
        info[listing].append({"name": f"step{step:08d}", "step": step, "tokens_seen": step * 16 * 64})
    writer.put_file("model.pt", tmp / f"step{max(kept)}.pt")
    writer.put_file("tokenizer.json", tmp / "tokenizer.json")
    writer.metrics.update(**info, best_checkpoint=info["checkpoints"][-1]["name"])
    return writer.publish()


SEEDS = (0, 1, 2)
SNAPSHOTS = (30, 75, 225)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """Three seeds of the tiny model, each with two kept checkpoints and three probe snapshots; the first seed's
    run is the main one."""
    tmp = tmp_path_factory.mktemp("probe")
    store = LocalStore(tmp / "artifacts")
    publish_corpus(store, tmp)
    train_runs = [publish_train(store, tmp, train_tiny(tmp, STEPS, (*SNAPSHOTS, STEPS // 2, STEPS), seed), seed,
                                SNAPSHOTS) for seed in SEEDS]
    # Every fifth question keeps the test inside its time budget; test_probe_items covers them all.
    benchmark = tmp / "questions.json"
    benchmark.write_text(json.dumps(json.loads(BENCHMARK.read_text())[::5]))
    settings = EvaluatorSettings(work_dir=tmp / "work", store={"root": tmp / "artifacts"}, eval={"benchmark": benchmark},
                                 probe={"train_run": train_runs[0].run, "seed_runs": [t.run for t in train_runs[1:]]})
    items_run, items_ran = probe_items.run(store, settings)
    probe_run, probe_ran = probe.run(store, settings)
    return {"store": store, "settings": settings, "items": items_run, "probe": probe_run, "train": train_runs[0],
            "train_runs": train_runs, "ran": (items_ran, probe_ran), "tmp": tmp}


def read(store, run, name, schema):
    return [schema.model_validate_json(x) for x in store.get_bytes(run.output(name).key).decode().splitlines() if x]


@pytest.mark.slow
def test_items_publish_with_a_manifest_and_an_unchanged_rerun_is_skipped(probed):
    store, settings, items_run = probed["store"], probed["settings"], probed["items"]
    assert probed["ran"] == (True, True)
    assert not runs.verify(store, items_run)
    items = read(store, items_run, "items.jsonl", ProbeItem)
    assert items_run.metrics["items"] == len(items) > 30
    assert items_run.input("train.jsonl").run == runs.latest(store, "process").run
    again, ran = probe_items.run(store, settings)
    assert not ran and again.run == items_run.run
    again, ran = probe.run(store, settings)
    assert not ran and again.run == probed["probe"].run


@pytest.mark.slow
def test_every_point_of_every_seed_scores_every_item_and_the_run_traces_to_its_inputs(probed):
    store, run = probed["store"], probed["probe"]
    items = read(store, probed["items"], "items.jsonl", ProbeItem)
    results = read(store, run, "results.jsonl", ProbeResult)
    points = ["scratch@init", *(f"scratch@step{s:08d}" for s in (30, 75, 150, 225, 300)), "scratch"]
    systems = {"ngram-1", "ngram-2", *points, *(f"seed{seed}/{p}" for seed in SEEDS[1:] for p in points)}
    assert {r.system for r in results} == systems
    for system in systems:
        assert sorted(r.item for r in results if r.system == system) == sorted(i.id for i in items)
    # greedy continuations only where the report reads them: not at snapshots, not for the other seeds
    asked = {r.system for r in results if r.greedy is not None}
    assert asked == {"ngram-1", "ngram-2", "scratch@init", "scratch@step00000150", "scratch@step00000300", "scratch"}
    assert {i.stage for i in run.inputs} == {"probe-items", "train", "tokenize"}
    assert {i.run for i in run.inputs if i.stage == "train"} == {t.run for t in probed["train_runs"]}
    assert any(i.name == "snapshots/step00000075/model.pt" for i in run.inputs)
    assert run.metrics["train_run"] == probed["train"].run and run.metrics["seeds"] == list(SEEDS)


@pytest.mark.slow
def test_the_curve_gives_each_point_every_seeds_accuracy_their_mean_and_spread(probed):
    store, run = probed["store"], probed["probe"]
    items = {i.id: i for i in read(store, probed["items"], "items.jsonl", ProbeItem)}
    results = read(store, run, "results.jsonl", ProbeResult)
    summary = json.loads(store.get_bytes(run.output("summary.json").key))
    curve = summary["curve"]
    assert [p["step"] for p in curve] == [0, 30, 75, 150, 225, 300]
    assert [p["tokens_seen"] for p in curve] == [0, *(s * 16 * 64 for s in (30, 75, 150, 225, 300))]
    at75 = curve[2]
    assert at75["seeds"] == list(SEEDS)
    for seed, system, got in zip(SEEDS, at75["systems"], at75["groups"]["memorisation"]["by_seed"]):
        assert system == ("" if seed == 0 else f"seed{seed}/") + "scratch@step00000075"
        mine = [r.rank == 1 for r in results if r.system == system and items[r.item].form == "memorisation"]
        assert got == pytest.approx(sum(mine) / len(mine))
    group = at75["groups"]["all"]
    assert group["mean"] == pytest.approx(np.mean(group["by_seed"]))
    assert group["min"] == min(group["by_seed"]) and group["sd"] == pytest.approx(np.std(group["by_seed"], ddof=1))
    assert group["interval"]["low"] <= group["mean"] <= group["interval"]["high"] and group["n"] == len(items)
    buckets = {i.bucket for i in items.values() if i.form == "memorisation"}
    assert all(f"memorisation/{b}" in p["groups"] for p in curve for b in buckets)  # exposure at every point
    # paired tests and full rates for the main run's checkpoints and the baselines, not for every curve point
    assert set(summary["systems"]) == {"ngram-1", "ngram-2", "scratch@init", "scratch@step00000150",
                                       "scratch@step00000300", "scratch"}


@pytest.mark.slow
def test_a_seed_probed_twice_is_refused(probed):
    settings = probed["settings"].model_copy(update={"probe": probed["settings"].probe.model_copy(
        update={"seed_runs": [probed["train_runs"][1].run, probed["train_runs"][1].run]})})
    with pytest.raises(InvalidInput, match="repeat a seed"):
        probe.run(probed["store"], settings)


@pytest.mark.slow
def test_training_raises_the_likelihood_of_true_completions_on_memorisation_stems(probed):
    """The trained checkpoint gives the true values of memorisation stems more likelihood than its random
    initialisation, paired on the same items. (Ranking them above the distractors more often is not
    reached in 300 steps of this tiny model: docs/probe.md reports what a longer run finds.)"""
    store, run = probed["store"], probed["probe"]
    items = {i.id: i for i in read(store, probed["items"], "items.jsonl", ProbeItem) if i.form == "memorisation"}
    results = read(store, run, "results.jsonl", ProbeResult)

    def true_likelihood(system):
        return {r.item: r.loglikelihoods[items[r.item].answer] for r in results
                if r.system == system and r.item in items}

    difference = paired_difference(true_likelihood(f"scratch@step{STEPS:08d}"), true_likelihood("scratch@init"))
    assert difference.low > 0, difference.text(percent=False)


@pytest.mark.slow
def test_report_section_tables_every_system_with_chance_and_draws_the_curve(probed):
    store, tmp = probed["store"], probed["tmp"]
    found = probe_report.latest(store)
    data = probe_report.load(store, found, tmp / "report")
    section, numbers = probe_report.section(data, seed=0)
    [table, _, curve_table] = [b for b in section.blocks if isinstance(b, Table)]
    assert [row[0] for row in table.rows] == ["ngram-1", "ngram-2", "scratch@init", "scratch@step00000150",
                                              "scratch@step00000300", "scratch", "chance 1/(k+1)"]
    assert all("n=" in cell for row in table.rows[:-1] for cell in row[2:4])
    assert {c["b"] for c in numbers["comparisons"]} == {"ngram-2", "scratch@init"}
    [chart] = [b for b in section.blocks if isinstance(b, Chart)]
    assert chart.png.startswith(b"\x89PNG") and "3 seed(s) (0, 1, 2)" in chart.caption
    assert [row[0] for row in curve_table.rows] == ["0", "30", "75", "150", "225", "300"]
    assert [row[2] for row in curve_table.rows] == ["3"] * 6
    assert [p["step"] for p in numbers["curve"]] == [0, 30, 75, 150, 225, 300]


@pytest.mark.slow
def test_headline_takes_the_probe_only_for_the_model_the_probe_scored(probed):
    store, tmp = probed["store"], probed["tmp"]
    found = probe_report.latest(store)
    _, numbers = probe_report.section(probe_report.load(store, found, tmp / "headline"), seed=0)
    train = probed["train"].run
    cells = probe_report.stored(numbers, found[0], {"scratch": train, "scratch_base": train,
                                                    "other": "train/another-run"})
    assert set(cells) == {"scratch", "scratch_base"}
    expected = numbers["systems"]["scratch"]["memorisation"]["accuracy"]
    assert f"n={expected['n']}" in cells["scratch"] and "memorisation" in cells["scratch"]


@pytest.fixture(scope="module")
def gguf_probed(probed):
    """The probed store copied (the tests above see it without GGUF systems), each kept checkpoint exported by the
    export stage, and the probe-gguf stage run on the exports."""
    tmp = probed["tmp"] / "gguf"
    shutil.copytree(probed["tmp"] / "artifacts", tmp / "artifacts")
    store = LocalStore(tmp / "artifacts")
    train = probed["train"]
    exported = []
    for checkpoint in train.metrics["checkpoints"]:
        settings = ExporterSettings(work_dir=tmp / "work", store={"root": tmp / "artifacts"}, export={
            "train_run": train.run, "checkpoint": checkpoint["name"], "quants": ["Q8_0"], "default_quant": "Q8_0",
            "ppl_max_tokens": 64, "threads": 1})
        exported.append(export.run(store, settings)[0])
    settings = EvaluatorSettings(work_dir=tmp / "work", store={"root": tmp / "artifacts"},
                                 eval={"benchmark": probed["settings"].eval.benchmark, "num_thread": 1})
    run, ran = probe_gguf.run(store, settings)
    return {"store": store, "settings": settings, "run": run, "ran": ran, "exports": exported, "tmp": tmp}


@pytest.mark.slow
def test_each_exported_checkpoint_ranks_the_items_as_the_model_in_process_does(probed, gguf_probed):
    store, run = gguf_probed["store"], gguf_probed["run"]
    items = read(store, probed["items"], "items.jsonl", ProbeItem)
    results = read(store, run, "results.jsonl", ProbeResult)
    assert gguf_probed["ran"] and {r.system for r in results} == {"gguf@step00000150", "gguf@step00000300"}
    for name, agreement in run.metrics["same_rank"].items():
        assert sorted(r.item for r in results if r.system == name) == sorted(i.id for i in items)
        # The f32 GGUF reads each stem as the model in process does (after <|eos|>, cut to the context): its
        # log-likelihoods stay within llama.cpp's fp16 GELU table of the in-process ones (docs/probe.md), and
        # near-ties aside the true value keeps its rank.
        assert run.metrics["max_abs_loglikelihood_difference"][name] < 0.05, name
        assert agreement >= 0.95, name
    summary = json.loads(store.get_bytes(run.output("summary.json").key))
    final = summary["agreement"]["gguf@step00000300"]
    assert final["in_process"] == "scratch@step00000300" and final["n"] == len(items)
    assert final["accuracy_difference"]["difference"]["low"] <= 0 <= final["accuracy_difference"]["difference"]["high"]
    assert {i.run for i in run.inputs} == {probed["items"].run, probed["probe"].run, *(e.run for e in gguf_probed["exports"])}
    again, ran = probe_gguf.run(store, gguf_probed["settings"])
    assert not ran and again.run == run.run


@pytest.mark.slow
def test_a_stem_longer_than_the_context_is_cut_as_in_process(probed, gguf_probed):
    """Read as trained, a stem past the 64-token context is cut from the left on both sides, so the GGUF and the
    checkpoint give the same scores and the same greedy continuation where the in-process probe would."""
    store, tmp = gguf_probed["store"], gguf_probed["tmp"]
    tokenizer = ProbeTokenizer(runs.fetch(store, probed["train"].output("tokenizer.json"), tmp / "tokenizer.json"))
    weights = runs.fetch(store, probed["train"].output("checkpoints/step00000300/model.pt"), tmp / "model.pt")
    in_process = TorchBackend.from_checkpoint("scratch", weights, tokenizer)
    export_run = gguf_probed["exports"][-1]
    gguf = LlamaBackend.from_gguf(runs.fetch(store, export_run.output(gguf_output(export_run, "f32")), tmp / "m.gguf"),
                                  threads=1, as_trained=True)
    stem = "Riluzole was approved for amyotrophic lateral sclerosis, " * 8 + "in"
    assert len(tokenizer.encode(stem)) > 64
    candidates = [" 1995", " 2017", " the United States"]
    assert gguf.loglikelihoods(stem, candidates) == pytest.approx(in_process.loglikelihoods(stem, candidates), abs=0.05)
    assert gguf.greedy(stem, 4) == in_process.greedy(stem, 4)


@pytest.mark.slow
def test_report_pairs_the_gguf_with_the_model_on_the_same_items_in_one_holm_family(gguf_probed):
    store, tmp = gguf_probed["store"], gguf_probed["tmp"]
    data = probe_report.load(store, probe_report.latest(store), tmp / "report")
    assert data.others == [gguf_probed["run"].run]
    section, numbers = probe_report.section(data, seed=0)
    shared = numbers["paired_systems"]
    assert shared["systems"] == ["scratch@step00000300", "gguf@step00000300", "ngram-1", "ngram-2", "scratch@init"]
    assert shared["items"] == len(data.items)
    [vs_model] = [c for c in shared["comparisons"] if c["a"] == "gguf@step00000300" and c["group"] == "all"]
    assert vs_model["b"] == "scratch@step00000300" and vs_model["mcnemar"]["n"] == len(data.items)
    family = numbers["comparisons"] + shared["comparisons"]
    smallest = min(family, key=lambda c: c["mcnemar"]["p_value"])
    assert smallest["mcnemar"]["p_holm"] == pytest.approx(min(1.0, len(family) * smallest["mcnemar"]["p_value"]))
    tables = {b.headers[1]: b for b in section.blocks if isinstance(b, Table)}
    assert [row[0] for row in tables["accuracy@1, all"].rows] == [*shared["systems"], "chance 1/(k+1)"]
    assert [row[0] for row in tables["in process"].rows] == ["gguf@step00000150", "gguf@step00000300"]
    assert shared["agreement"]["gguf@step00000300"]["same_rank"] == gguf_probed["run"].metrics["same_rank"][
        "gguf@step00000300"]
    assert not probe_report.stored(numbers, probe_report.latest(store)[0], {}).keys() & {"rag", "closed_book"}


@pytest.mark.slow
def test_headline_finding_states_each_form_against_the_bigram_the_curve_and_the_buckets(probed):
    store, tmp = probed["store"], probed["tmp"]
    _, numbers = probe_report.section(probe_report.load(store, probe_report.latest(store), tmp / "finding"), seed=0)
    text = probe_report.finding(numbers)
    final = numbers["systems"]["scratch"]
    for form in ("memorisation", "generalisation"):
        assert probe_report._interval(final[form]["accuracy"]).text() in text
        test = next(c for c in numbers["comparisons"] if (c["a"], c["b"], c["group"]) == ("scratch", "ngram-2", form))
        assert f"Holm-adjusted McNemar p {test['mcnemar']['p_holm']:.3g}" in text
    assert "mean over seeds (0, 1, 2)" in text and f"after {numbers['curve'][-1]['tokens_seen']:,} tokens" in text
    assert "5+ " + probe_report._interval(final["bucket 5+"]["accuracy"]).text() in text
    assert probe_report.finding({**numbers, "systems": {"scratch": final}}) is None, "no bigram: no finding"
