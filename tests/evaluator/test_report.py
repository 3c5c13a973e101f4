"""Store mode end to end: score both systems, review (resumable), and the comparison report."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from services.evaluator.inputs import load_benchmark
from services.evaluator.report.stage import report_stage
from services.evaluator.review import review_session
from services.evaluator.score import score_stage
from services.evaluator.settings import BENCHMARK, EvalConfig, EvaluatorSettings
from services.evaluator.taxonomy import review_sample
from shared import runs
from shared.settings import StoreSettings
from shared.store import LocalStore

COPIED = ("the upper and lower motor neurons degenerate progressively in the brain and the spinal cord "
          "while sensation and eye movements are usually spared until late")


def _publish(store, stage: str, name: str, content: str, work: Path) -> None:
    def body(writer, scratch):
        writer.put_bytes(name, content.encode())
    runs.run_stage(store, stage, {}, [], body, work_dir=work)


@pytest.fixture
def world(tmp_path):
    """A store holding a process run and both systems' eval runs over six benchmark questions."""
    items = []
    for item in load_benchmark(BENCHMARK):
        if item.category not in {i.category for i in items}:
            items.append(item)
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps([i.model_dump() for i in items]))
    store = LocalStore(tmp_path / "store")
    work = tmp_path / "work"
    leaked = items[0]
    corpus = f"{leaked.reference_answer}\n\nIn ALS {COPIED}.\n\nTofersen is studied in SOD1 carriers.\n"
    _publish(store, "process", "corpus.txt", corpus, work)

    scratch = [{"id": leaked.id, "response": leaked.reference_answer},
               {"id": items[1].id, "response": "Neurovaxine, tested in NCT09481273, cures it."}]
    scratch += [{"id": i.id, "response": f"In ALS {COPIED}."} for i in items[2:]]
    rag = []
    for n, item in enumerate(items):
        chunk = {"chunk_id": f"c{n}", "source_id": f"doc{n}", "title": "t", "text": item.reference_answer,
                 "distance": 0.1}
        answer = "I cannot answer from the context." if n == 5 else item.reference_answer
        rag.append({"id": item.id, "response": answer, "latency_s": 0.5, "system": "rag", "model": "gemma3-270m",
                    "retrieved": [chunk]})
    _publish(store, "eval-scratch", "responses.jsonl", "".join(json.dumps(r) + "\n" for r in scratch), work)
    _publish(store, "eval-rag", "responses.jsonl", "".join(json.dumps(r) + "\n" for r in rag), work)
    settings = EvaluatorSettings(store=StoreSettings(root=tmp_path / "store"), work_dir=work,
                                 eval=EvalConfig(benchmark=bench, review_sample_size=4, use_embeddings=False))
    return store, settings, items


def _scores(store, system):
    manifest = runs.latest(store, f"score-{system}")
    return json.loads(store.get_bytes(manifest.output("scores.json").key))


def test_score_stage_publishes_contract_and_skips_when_unchanged(world):
    store, settings, items = world
    manifest, ran = score_stage(store, settings, "scratch")
    assert ran and manifest.metrics["items"] == 6
    scores = _scores(store, "scratch")
    by_id = {s["id"]: s for s in scores["items"]}
    assert by_id[items[0].id]["accuracy"] == 1.0
    assert by_id[items[0].id]["facts_present"] == [True] * len(items[0].key_facts)
    assert by_id[items[1].id]["fabricated_entities"] == ["NCT09481273", "Neurovaxine"]
    assert set(scores["summary"]) >= {"accuracy", "accuracy_by_category", "fabrication_rate", "hedging"}
    assert score_stage(store, settings, "scratch")[1] is False


def test_review_saves_each_review_and_resumes_after_the_last(world):
    store, settings, _ = world
    score_stage(store, settings, "scratch")
    console = Console(file=io.StringIO())
    answers = iter(["c", "", "i", 1, "h", "invented drug", "q"])
    saved = review_session(store, settings, "scratch", "tester", console, lambda *a, **k: next(answers))
    assert saved == 2 and len(runs.runs(store, "review-scratch")) == 2

    sample = review_sample([s["id"] for s in _scores(store, "scratch")["items"]], 4, settings.seed)
    answers = iter(["r", "", "q"])
    review_session(store, settings, "scratch", "tester", Console(file=io.StringIO()), lambda *a, **k: next(answers))
    latest = runs.latest(store, "review-scratch")
    reviews = [json.loads(x) for x in store.get_bytes(latest.output("reviews.jsonl").key).decode().splitlines()]
    assert [r["id"] for r in reviews] == sample[:3]
    assert [r["correctness"] for r in reviews] == ["correct", "incorrect", "refusal"]
    assert reviews[1]["failure_mode"] == "confident_fabrication" and reviews[1]["severity"] == "high"


def test_report_compares_systems_from_stored_artifacts(world):
    store, settings, items = world
    for system in ("scratch", "rag"):
        score_stage(store, settings, system)
    answers = iter(["i", 1, "m", "", "q"])
    review_session(store, settings, "scratch", "t", Console(file=io.StringIO()), lambda *a, **k: next(answers))

    manifest, ran = report_stage(store, settings)
    assert ran
    names = {o.name for o in manifest.outputs}
    assert {"report.md", "report.html", "report.json", "charts/accuracy_overall.png",
            "charts/accuracy_by_category.png", "charts/failure_modes.png", "charts/retrieval_recall.png",
            "charts/hedging_fabrication.png", "charts/leakage.png"} <= names
    md = store.get_bytes(manifest.output("report.md").key).decode()
    html = store.get_bytes(manifest.output("report.html").key).decode()
    numbers = json.loads(store.get_bytes(manifest.output("report.json").key))

    assert numbers["accuracy"]["scratch"] == _scores(store, "scratch")["summary"]["accuracy"]
    assert numbers["accuracy"]["rag"] > numbers["accuracy"]["scratch"]
    assert numbers["leaked_items"] == [items[0].id]
    assert numbers["memorisation_max_words"] >= len(COPIED.split())
    assert numbers["fact_recall"] == 1.0
    assert "manual reviews (1)" in md and "automatic proxies (6 items)" in md
    assert f"| {items[5].id} |" in md  # retrieved every fact, answered none of them
    assert html.count("data:image/png;base64,") == 6 and 'src="charts' not in html
    assert report_stage(store, settings)[1] is False
