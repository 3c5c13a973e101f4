"""Store mode end to end: score both systems, review (resumable), and the comparison report."""

from __future__ import annotations

import io
import json
from datetime import date
from pathlib import Path

import pytest
from rich.console import Console

from services.evaluator import stats
from services.evaluator.inputs import load_benchmark
from services.evaluator.report import analysis
from services.evaluator.report.compose import CONDITIONS
from services.evaluator.score import is_correct, summarize
from services.evaluator.settings import BENCHMARK, EvalConfig, EvaluatorSettings, for_run
from services.evaluator.stages import report as reporting
from services.evaluator.stages import review as reviewing
from services.evaluator.stages import score as scoring
from services.evaluator.taxonomy import review_sample
from shared import runs
from shared.schemas.eval import FactMatch, ItemScore, KeyFact, ScoreFile
from shared.schemas.experiment import CheckpointResult, ExperimentResult, ItemExposure
from shared.settings import StoreSettings
from shared.store import LocalStore

COPIED = ("the upper and lower motor neurons degenerate progressively in the brain and the spinal cord "
          "while sensation and eye movements are usually spared until late")


def _publish(store, stage: str, files: dict[str, str], work: Path, inputs=(), settings=None):
    """A hand-made run; ``settings`` tells apart runs of one stage that skip-if-unchanged would merge."""
    def body(writer, scratch):
        for name, text in files.items():
            writer.put_bytes(name, text.encode())
    return runs.run_stage(store, stage, settings or {}, list(inputs), body, work_dir=work)[0]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


@pytest.fixture
def world(tmp_path):
    """A store holding a process run and three systems' eval runs over six benchmark questions."""
    items = []
    for item in load_benchmark(BENCHMARK):
        if item.category not in {i.category for i in items}:
            items.append(item)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([i.model_dump(mode="json") for i in items]))
    store = LocalStore(tmp_path / "store")
    work = tmp_path / "work"
    leaked = items[0]
    corpus = f"{leaked.reference_answer}\n\nIn ALS {COPIED}.\n\nTofersen is studied in SOD1 carriers.\n"
    train = _jsonl([{"id": "doc-1", "source": "sample", "category": "educational", "title": "ALS", "text": corpus}])
    _publish(store, "process", {"corpus.txt": corpus, "train.jsonl": train}, work)

    scratch = [{"id": leaked.id, "response": leaked.reference_answer},
               {"id": items[1].id, "response": "Neurovaxine, tested in NCT09481273, cures it."},
               {"id": items[2].id, "response": "ious."}]
    scratch += [{"id": i.id, "response": f"In ALS {COPIED}."} for i in items[3:]]
    rag = []
    for n, item in enumerate(items):
        chunk = {"chunk_id": f"c{n}", "source_id": f"doc{n}", "title": "t", "text": item.reference_answer,
                 "distance": 0.1}
        answer = "I cannot answer from the context." if n == 5 else item.reference_answer
        rag.append({"id": item.id, "response": answer, "latency_s": 0.5, "system": "rag", "model": "gemma3-270m",
                    "retrieved": [chunk]})
    closed = [{"id": i.id, "response": i.reference_answer if n < 2 else "I am not sure.", "system": "closed_book"}
              for n, i in enumerate(items)]
    for system, rows in (("scratch", scratch), ("rag", rag), ("closed_book", closed)):
        _publish(store, f"eval-{system}", {"responses.jsonl": _jsonl(rows)}, work)
    settings = EvaluatorSettings(store=StoreSettings(root=tmp_path / "store"), work_dir=work,
                                 eval=EvalConfig(benchmark=bench, review_sample_size=4, use_embeddings=False))
    return store, settings, items


def _scores(store, system):
    manifest = runs.latest(store, f"score-{system}")
    return json.loads(store.get_bytes(manifest.output("scores.json").key))


def test_score_stage_publishes_contract_and_skips_when_unchanged(world):
    store, settings, items = world
    manifest, ran = scoring.run(store, for_run(settings, system="scratch"))
    assert ran and manifest.metrics["items"] == 6
    scores = _scores(store, "scratch")
    by_id = {s["id"]: s for s in scores["items"]}
    assert by_id[items[0].id]["accuracy"] == 1.0
    assert by_id[items[0].id]["facts_present"] == [True] * len(items[0].key_facts)
    assert by_id[items[1].id]["fabricated_entities"] == ["NCT09481273", "Neurovaxine"]
    assert set(scores["summary"]) >= {"accuracy", "accuracy_by_category", "fabrication_rate", "hedging"}
    assert scoring.run(store, for_run(settings, system="scratch"))[1] is False


def test_review_saves_each_review_and_resumes_after_the_last(world):
    store, settings, _ = world
    scoring.run(store, for_run(settings, system="scratch"))
    console = Console(file=io.StringIO())
    answers = iter(["c", "", "i", 1, "h", "invented drug", "q"])
    reviewer = for_run(settings, system="scratch", reviewer="tester")
    manifest, ran = reviewing.run(store, reviewer, console=console, prompt=lambda *a, **k: next(answers))
    assert ran and manifest.metrics["reviewed"] == 2 and len(runs.runs(store, "review-scratch")) == 2

    sample = review_sample([s["id"] for s in _scores(store, "scratch")["items"]], 4, settings.seed)
    answers = iter(["r", "", "q"])
    reviewing.run(store, reviewer, console=Console(file=io.StringIO()), prompt=lambda *a, **k: next(answers))
    latest = runs.latest(store, "review-scratch")
    reviews = [json.loads(x) for x in store.get_bytes(latest.output("reviews.jsonl").key).decode().splitlines()]
    assert [r["id"] for r in reviews] == sample[:3]
    assert [r["correctness"] for r in reviews] == ["correct", "incorrect", "refusal"]
    assert reviews[1]["failure_mode"] == "confident_fabrication" and reviews[1]["severity"] == "high"


def test_score_command_scores_the_named_eval_run_with_the_given_benchmark(world, monkeypatch):
    from click.testing import CliRunner

    from als_lm.cli import cli

    store, settings, items = world
    monkeypatch.setenv("ALS_STORE__ROOT", str(store.root))
    monkeypatch.setenv("ALS_WORK_DIR", str(settings.work_dir))
    monkeypatch.setenv("ALS_EVAL__USE_EMBEDDINGS", "false")
    asked = runs.latest(store, "eval-rag")
    result = CliRunner().invoke(cli, ["eval", "score", "--system", "rag", "--eval-run", asked.run,
                                      "--benchmark", str(settings.eval.benchmark)])
    assert result.exit_code == 0, result.output
    scored = runs.latest(store, "score-rag")
    assert f"score-rag: published {scored.run}" in result.output
    assert scored.metrics["eval_run"] == asked.run and scored.metrics["items"] == len(items)


def test_review_command_stores_the_reviewer_and_says_how_much_of_the_sample_is_done(world, monkeypatch):
    from click.testing import CliRunner

    from als_lm.cli import cli

    store, settings, _ = world
    scoring.run(store, for_run(settings, system="scratch"))
    for name, value in {"ALS_STORE__ROOT": str(store.root), "ALS_WORK_DIR": str(settings.work_dir),
                        "ALS_EVAL__BENCHMARK": str(settings.eval.benchmark),
                        "ALS_EVAL__REVIEW_SAMPLE_SIZE": "4"}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, ["eval", "review", "--system", "scratch", "--reviewer", "ana"], input="r\n\nq\n")
    assert result.exit_code == 0, result.output
    assert "review-scratch: published" in result.output and "(1 of 4 sampled responses reviewed)" in result.output
    latest = runs.latest(store, "review-scratch")
    assert json.loads(store.get_bytes(latest.output("reviews.jsonl").key))["reviewer"] == "ana"

    quit_at_once = CliRunner().invoke(cli, ["eval", "review", "--system", "scratch"], input="q\n")
    assert quit_at_once.exit_code == 0 and f"skipped (unchanged), see {latest.run}" in quit_at_once.output


def test_report_compares_systems_from_stored_artifacts(world):
    store, settings, items = world
    for system in ("scratch", "rag", "closed_book"):
        scoring.run(store, for_run(settings, system=system))
    answers = iter(["i", 1, "m", "", "q"])
    reviewing.run(store, for_run(settings, system="scratch", reviewer="t"), console=Console(file=io.StringIO()),
                  prompt=lambda *a, **k: next(answers))

    manifest, ran = reporting.run(store, settings)
    assert ran
    names = {o.name for o in manifest.outputs}
    assert {"report.md", "report.html", "report.json", "charts/accuracy_overall.png",
            "charts/accuracy_by_category.png", "charts/failure_modes.png", "charts/retrieval_recall.png",
            "charts/hedging_fabrication.png", "charts/leakage.png"} <= names
    md = store.get_bytes(manifest.output("report.md").key).decode()
    html = store.get_bytes(manifest.output("report.html").key).decode()
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))

    assert numbers["accuracy"]["scratch"] == _scores(store, "scratch")["summary"]["accuracy"]
    # The headline is claim-level hallucination, per system, with its interval and the paired differences.
    claims = [c for s in _scores(store, "rag")["items"] for c in s["claims"]]
    assert numbers["hallucination_rate"]["rag"] == pytest.approx(
        sum(c["verdict"] != "supported" for c in claims) / len(claims))  # pooled over every claim
    headline = md.split("## Hallucination: claims")[1].split("\n## ")[0]
    assert "| rag | " in headline and "rag − closed_book (n=6)" in headline and "answers without a claim" in headline
    lead = md.split("## Headline: stored, extractable, hallucinated")[1].split("\n## ")[0]
    assert md.index("## Headline") < md.index("## About this report")
    facts = sum(len(i.key_facts) for i in items)
    stated = facts - numbers["benchmark"]["facts_absent_from_corpus"]
    assert f"{stated} of the benchmark's {facts} key facts" in lead and "comes from process" not in lead
    assert f"| rag | {CONDITIONS['rag']} | not measured (no probe of this model) | " in lead
    correct = stats.Interval(**numbers["systems"]["rag"]["figures"]["correct"])
    assert correct.text() in lead and f"rag: {correct.estimate:.1%} of the 6 questions answered strictly" in lead
    assert numbers["accuracy"]["rag"] > numbers["accuracy"]["scratch"]
    assert numbers["leaked_items"] == [items[0].id]
    assert numbers["memorisation_max_words"] >= len(COPIED.split())
    assert numbers["fact_recall"] == 1.0
    assert "manual reviews (1)" in md and "automatic proxies (6 items)" in md
    assert f"| {items[5].id} | " in md.split("## Retrieval quality")[1].split("## ")[0]  # retrieved, not answered
    assert html.count("data:image/png;base64,") == 6 and 'src="charts' not in html
    assert reporting.run(store, settings)[1] is False


def test_report_prints_dated_items_and_counts_facts_the_corpus_never_states(world):
    store, settings, items = world
    dated = items[0].model_copy(update={"volatile": True, "as_of": date(2025, 6, 30)})
    never = items[1].model_copy(update={"key_facts": [KeyFact(text="zorbulin receptor")]})
    settings.eval.benchmark.write_text(json.dumps([i.model_dump(mode="json") for i in [dated, never, *items[2:]]]))
    scoring.run(store, for_run(settings, system="rag"))
    manifest, _ = reporting.run(store, settings)
    md = store.get_bytes(manifest.output("report.md").key).decode()
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))

    section = md.split("## The benchmark")[1].split("## ")[0]
    assert f"| {dated.id} | 2025-06-30 |" in section
    assert numbers["benchmark"]["dated"] == {dated.id: "2025-06-30"}
    # "zorbulin receptor" is nowhere in the corpus; the other items' facts may or may not be.
    assert numbers["benchmark"]["facts_absent_from_corpus"] >= 1
    assert f"{numbers['benchmark']['facts_absent_from_corpus']} key facts" in section


def test_every_rate_has_its_interval_and_n_and_comparisons_are_paired(world):
    store, settings, items = world
    for system in ("scratch", "rag", "closed_book"):
        scoring.run(store, for_run(settings, system=system))
    manifest, _ = reporting.run(store, settings)
    md = store.get_bytes(manifest.output("report.md").key).decode()
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))

    assert list(numbers["systems"]) == ["scratch", "rag", "closed_book"]
    rag = numbers["systems"]["rag"]["figures"]
    accuracy = rag["accuracy"]
    assert accuracy["n"] == 6 and accuracy["low"] <= accuracy["estimate"] <= accuracy["high"]
    assert accuracy["estimate"] == pytest.approx(numbers["accuracy"]["rag"])
    assert {"fabrication", "hedged", "refusal", "correct", "facts_supported", "facts_contradicted"} <= set(rag)
    one = numbers["systems"]["rag"]["by_category"][items[0].category]
    assert one["n"] == 1 and one["too_small"] and one["figures"]["accuracy"]["undefined_reason"]
    assert numbers["statistics"]["seed"] == settings.seed and numbers["statistics"]["correct"] == analysis.CORRECT
    assert stats.Interval(**accuracy).text() in md  # the same interval, printed
    category_row = next(line for line in md.splitlines() if line.startswith(f"| {items[0].category} |"))
    assert category_row.count("(n=1, no interval: fewer than 5 items) †") == 3  # each system: no CI, too small
    assert "Too small to compare (fewer than 10 paired items): scratch − rag on all questions (n=6)" in md

    overall = [c for c in numbers["comparisons"] if c["category"] is None]
    assert [(c["a"], c["b"]) for c in overall] == [("scratch", "rag"), ("scratch", "closed_book"),
                                                  ("rag", "closed_book")]
    scratch_rag = overall[0]
    a = {s["id"]: s["accuracy"] for s in _scores(store, "scratch")["items"]}
    b = {s["id"]: s["accuracy"] for s in _scores(store, "rag")["items"]}
    assert scratch_rag["difference"]["estimate"] == pytest.approx(sum(a[i] - b[i] for i in a) / len(a))
    assert scratch_rag["difference"]["n"] == 6 and scratch_rag["too_small"]  # 6 < MIN_COMPARE_N
    ok_a, ok_b = ({s["id"]: is_correct(ItemScore(**s)) for s in _scores(store, n)["items"]} for n in ("scratch", "rag"))
    assert scratch_rag["mcnemar"]["b_only"] == sum(ok_b[i] and not ok_a[i] for i in a) > 0
    assert manifest.metrics["accuracy_low"]["rag"] == accuracy["low"]
    assert manifest.metrics["accuracy_high"]["closed_book"] == numbers["systems"]["closed_book"]["figures"][
        "accuracy"]["high"]
    for value in manifest.metrics.values():  # `als-lm demo` prints every per-system map as percentages
        assert not isinstance(value, dict) or all(isinstance(v, float) for v in value.values())
    assert "| closed_book |" in md
    echo = stats.Interval(**_scores(store, "rag")["summary"]["echo_baseline"]["accuracy_interval"])
    assert next(line for line in md.splitlines() if line.startswith("| rag | gemma3-270m |")).endswith(
        f"| {echo.text()} |")


def test_per_question_table_shows_every_answer_and_each_facts_fate(world):
    store, settings, items = world
    for system in ("scratch", "rag"):
        scoring.run(store, for_run(settings, system=system))
    manifest, _ = reporting.run(store, settings)
    md = store.get_bytes(manifest.output("report.md").key).decode()
    table = md.split("## Every question")[1]
    assert table.count("| scratch |") == 6 and table.count("| rag |") == 6
    fabricated = next(line for line in table.splitlines() if "Neurovaxine, tested" in line)
    assert fabricated.rstrip(" |").endswith("NCT09481273, Neurovaxine")
    first_rag = next(line for line in table.splitlines() if line.startswith(f"| {items[0].id} |"))
    assert items[0].key_facts[0].text in first_rag  # the reference answer supports its own facts
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))
    # "ious." (a fragment) and a generic ALS sentence for the CENTAUR question (off-topic)
    assert numbers["failure_matrix"]["scratch"]["non_answer"] == pytest.approx(2 / 6)


def _score_run(store, work, system: str, scored: list[ItemScore], answers: dict[str, str], process, tag: str):
    """A synthetic score run: chosen accuracies, over published responses and the process corpus."""
    eval_run = _publish(store, f"eval-{system}", {"responses.jsonl": _jsonl(
        [{"id": i, "response": text} for i, text in answers.items()])}, work, settings={"tag": tag})
    scores = ScoreFile(items=scored, summary=summarize(scored))
    inputs = runs.inputs_from(eval_run, ["responses.jsonl"]) + runs.inputs_from(process, ["corpus.txt"])
    return _publish(store, f"score-{system}", {"scores.json": scores.model_dump_json()}, work, inputs)


def _item(item, accuracy: float) -> ItemScore:
    facts = [FactMatch(fact=f.text, present=k < round(accuracy * len(item.key_facts)),
                       verdict="supported" if k < round(accuracy * len(item.key_facts)) else "absent")
             for k, f in enumerate(item.key_facts)]
    return ItemScore(id=item.id, category=item.category, facts_present=[f.present for f in facts],
                     accuracy=accuracy, fabricated_entities=[], facts=facts,
                     hedging={"hedged": False, "refusal": False, "count": 0, "cues": []})


def test_experiment_run_adds_learning_curves_and_exposure_from_stored_runs(world):
    store, settings, items = world
    work = settings.work_dir
    process = runs.latest(store, "process")
    checkpoints = []
    plan = [(100, 0.0, "ious."), (1_000, 0.0, "the"), (10_000, 0.5, f"In ALS {COPIED}."), (100_000, 1.0, None)]
    for step, (tokens, accuracy, text) in enumerate(plan):
        run = _score_run(store, work, "scratch", [_item(i, accuracy) for i in items],
                         {i.id: text or i.reference_answer for i in items}, process, f"checkpoint {step}")
        base = _score_run(store, work, "scratch_base", [_item(i, 1.0 if n < step else 0.0) for n, i in enumerate(items)],
                          {i.id: f"raw {step}" for i in items}, process, f"base checkpoint {step}")
        checkpoints.append(CheckpointResult(name=f"step-{step:06d}", step=step, tokens_seen=tokens,
                                            export_run="export/x", serve_run="serve/x", eval_run="eval-scratch/x",
                                            score_run=run.run, base_eval_run="eval-scratch_base/x",
                                            base_score_run=base.run))
    rag = _score_run(store, work, "rag", [_item(i, 1.0 if n % 2 else 0.0) for n, i in enumerate(items)],
                     {i.id: i.reference_answer for i in items}, process, "rag")
    buckets = ["unseen", "unseen", "unseen", "1", "1", "1"]
    result = ExperimentResult(
        preset="tiny", parameters=1000, train_run="train/x", checkpoints=checkpoints,
        systems={"scratch": checkpoints[-1].score_run, "scratch_base": checkpoints[-1].base_score_run, "rag": rag.run},
        exposure=[ItemExposure(id=i.id, facts=[], bucket=b) for i, b in zip(items, buckets)])
    _publish(store, "experiment", {"experiment.json": result.model_dump_json()}, work)
    _score_run(store, work, "scratch", [_item(i, 0.25) for i in items], {i.id: "later" for i in items}, process,
               "a later score run the experiment does not name")

    manifest, _ = reporting.run(store, settings)
    assert {"charts/learning_curves.png", "charts/exposure.png"} <= {o.name for o in manifest.outputs}
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))
    curve = numbers["experiment"]["checkpoints"]
    assert [c["tokens_seen"] for c in curve] == [100, 1_000, 10_000, 100_000]
    assert [c["accuracy"]["estimate"] for c in curve] == [0.0, 0.0, 0.5, 1.0]
    assert [c["base_correct"]["estimate"] for c in curve] == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6])
    assert all(c["accuracy"]["n"] == 6 and c["accuracy"]["high"] is not None for c in curve)
    assert curve[0]["max_span"] < 4 <= len(COPIED.split()) <= curve[2]["max_span"]
    exposure = numbers["experiment"]["exposure"]["accuracy"]
    assert exposure["rag"]["unseen"]["estimate"] == pytest.approx(1 / 3)  # items 0, 2 wrong, 1 right
    assert exposure["scratch"]["1"]["estimate"] == 1.0 and exposure["scratch"]["1"]["n"] == 3
    assert numbers["accuracy"] == {"scratch": 1.0, "scratch_base": 0.5, "rag": 0.5}  # the experiment's runs
    md = store.get_bytes(manifest.output("report.md").key).decode()
    assert "## Learning curves" in md and "## Accuracy by fact exposure" in md
    assert "| step-000003 | 100,000 |" in md


def test_a_category_beyond_the_design_gets_its_own_row_after_the_six(world):
    """Benchmarks from elsewhere name their own categories (issue 24): the report lists them, not drops them."""
    store, settings, items = world
    bench = settings.eval.benchmark
    data = json.loads(bench.read_text())
    data[0]["category"] = "epidemiology"
    bench.write_text(json.dumps(data))
    for system in ("scratch", "rag", "closed_book"):
        scoring.run(store, for_run(settings, system=system))
    manifest, _ = reporting.run(store, settings)
    md = store.get_bytes(manifest.output("report.md").key).decode()
    rows = [line.split(" | ")[0].strip("| ") for line in md.split("| category |")[1].split("\n\n")[0].splitlines()[2:]]
    assert rows == [*[i.category for i in items[1:]], "epidemiology"]
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))
    assert "epidemiology" in json.dumps(numbers)
