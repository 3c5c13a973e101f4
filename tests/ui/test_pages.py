"""The Benchmark and Review pages' functions on a store holding really scored runs (no model needed:
the responses are written here, the scorer is the real one without its embedding fallback), and the
served app's privacy settings."""

from __future__ import annotations

import httpx
import pandas as pd
import pytest

from services.evaluator.settings import for_run
from services.evaluator.stages import score as scoring
from services.evaluator.ui import benchmark, review, training
from services.evaluator.ui.app import launch
from services.evaluator.ui.settings import UISettings
from shared import runs
from shared.schemas.eval import Response
from shared.schemas.model import METRICS_COLUMNS, MetricsRow
from shared.servers import free_port
from shared.settings import load
from shared.store import LocalStore
from tests.ui.conftest import publish_corpus

ANSWERS = {
    "scratch": {"drug-001": "Riluzole does not inhibit glutamate release. It is combined with zorbalimab.",
                "gene-001": "SOD1 was the first gene linked to ALS, found in familial ALS in 1993."},
    "rag": {"drug-001": "Riluzole protects neurons from glutamate excitotoxicity and blocks sodium channels.",
            "gene-001": "The context does not say."},
}


@pytest.fixture
def scored(tmp_path):
    settings = load(UISettings, work_dir=tmp_path / "work", store={"root": tmp_path / "artifacts"},
                    eval={"use_embeddings": False, "review_sample_size": 2})
    store = LocalStore(settings.store.root)
    publish_corpus(store, settings.work_dir)
    for system, answers in ANSWERS.items():
        lines = "".join(Response(id=i, response=a, system=system).model_dump_json() + "\n" for i, a in answers.items())
        runs.run_stage(store, f"eval-{system}", {"limit": 2, "system": system}, [],
                       lambda w, _s, lines=lines: w.put_bytes("responses.jsonl", lines.encode()),
                       work_dir=settings.work_dir)
        scoring.run(store, for_run(settings, system=system))
    return settings, store


def test_benchmark_table_filters_and_shows_a_marked_answer(scored):
    settings, store = scored
    loaded = benchmark.load(store, [], {}, settings.work_dir / "ui")
    assert len(loaded.table) == 4 and "no report run yet" in loaded.summary()
    rag = benchmark.filter_table(loaded.table, "rag", benchmark.ALL, benchmark.ALL)
    assert list(rag.id) == ["drug-001", "gene-001"] and rag.accuracy[0] >= 0.75 and rag.accuracy[1] == 0
    genes = benchmark.filter_table(loaded.table, benchmark.ALL, "gene_mutation", benchmark.ALL)
    assert set(genes.system) == {"scratch", "rag"}
    chosen = min(m for m in set(loaded.table.failure_mode) if m)
    assert set(benchmark.filter_table(loaded.table, benchmark.ALL, benchmark.ALL, chosen).failure_mode) == {chosen}
    assert set(benchmark.filter_table(loaded.table, benchmark.ALL, benchmark.ALL, "none").failure_mode) == {""}
    answer, facts = benchmark.detail(loaded, "scratch", "drug-001")
    assert '<mark class="negated"' in answer and '<mark class="fabricated"' in answer
    assert "zorbalimab" in facts


def test_benchmark_rates_carry_their_interval_and_n_for_the_rows_shown(scored):
    settings, store = scored
    loaded = benchmark.load(store, [], {}, settings.work_dir / "ui", settings.seed)
    summary = loaded.summary()
    rag = loaded.table[loaded.table.system == "rag"]
    stored = [s.accuracy for (system, _), (_, s) in loaded.answers.items() if system == "rag"]
    assert f"**rag**: mean accuracy {100 * sum(stored) / 2:.1f} % (n=2, no interval: fewer than 5 items)" in summary
    assert "fabricated names 50.0 % (n=2" in summary.split("**rag**")[0]  # scratch invented zorbalimab
    assert "(n=2" in benchmark.figures_markdown(loaded, rag) and "scratch" not in benchmark.figures_markdown(loaded, rag)
    assert benchmark.figures(loaded, rag)["rag"]["accuracy"].estimate == sum(stored) / 2  # not the rounded column

    # 10 rows per system (the two questions repeated): intervals are defined and seeded
    many = benchmark.Evaluation(pd.concat([loaded.table] * 5, ignore_index=True), loaded.answers, seed=settings.seed)
    shown = benchmark.figures(many, many.table[many.table.system == "scratch"])["scratch"]
    assert shown["accuracy"].n == 10 and shown["accuracy"].low <= shown["accuracy"].estimate <= shown["accuracy"].high
    assert shown["fabricated"].estimate == 0.5
    assert shown["accuracy"] == benchmark.figures(many, many.table)["scratch"]["accuracy"]  # same seed, same CI


def test_training_page_lists_stored_train_runs_and_plots_their_metrics(scored):
    settings, store = scored
    assert training.choices(store) == [(training.LIVE_LABEL, training.LIVE)]
    rows = [MetricsRow(step=s, train_loss=5.0 - s / 10, val_loss=4.5 if s == 20 else None, lr=1e-3,
                       tokens_seen=s * 512, tokens_per_s=900.0, elapsed_s=s * 0.5) for s in (10, 20)]
    csv = ",".join(METRICS_COLUMNS) + "\n" + "".join(",".join(r.csv_cells()) + "\n" for r in rows)

    def body(writer, scratch):
        writer.put_bytes("metrics.csv", csv.encode())
        writer.metrics.update(preset="tiny", steps=20, best_val_loss=4.5)

    manifest, _ = runs.run_stage(store, "train", {"preset": "tiny"}, [], body, work_dir=settings.work_dir)
    (live, stored) = training.choices(store)
    assert live[1] == training.LIVE and stored == (f"{manifest.run} (tiny · 20 steps · best val loss 4.500)",
                                                   manifest.run)
    loss, lr, _, status = training.stored_curves(store, manifest.run, settings.work_dir / "ui")
    assert list(loss[loss.series == "train_loss"].value) == [4.0, 3.0] and list(lr.step) == [10, 20]
    assert status.startswith(f"`{manifest.run}` · step **20**") and "best val loss 4.5" in status
    *_, missing = training.stored_curves(store, "train/nope", settings.work_dir / "ui")
    assert missing.startswith("⚠") and "train/nope" in missing


def test_review_saves_each_item_and_resumes_where_it_stopped(scored):
    settings, store = scored
    session = review.start(store, settings, "scratch")
    assert session.progress() == "**scratch**: 0 of 2 sampled responses reviewed"
    first = session.current
    with pytest.raises(ValueError, match="needs a failure mode and severity"):
        review.save(store, settings, session, "incorrect", "", None, "", "me")
    with pytest.raises(ValueError, match="choose a correctness label"):
        review.save(store, settings, session, None, "", None, "", "me")
    review.save(store, settings, session, "incorrect", "confident_fabrication", "high", "invented drug", "me")
    resumed = review.start(store, settings, "scratch")
    assert resumed.current != first and resumed.progress().endswith("1 of 2 sampled responses reviewed")
    saved = review.all_reviews(store, settings)[("scratch", first)]
    assert (saved.failure_mode, saved.severity, saved.notes) == ("confident_fabrication", "high", "invented drug")
    loaded = benchmark.load(store, [], review.all_reviews(store, settings), settings.work_dir / "ui")
    row = loaded.table[(loaded.table.system == "scratch") & (loaded.table.id == first)].iloc[0]
    assert (row.label, row.failure_mode) == ("reviewed", "confident_fabrication")


def test_served_app_is_private_by_default_and_asks_for_the_configured_login(tmp_path):
    settings = load(UISettings, work_dir=tmp_path / "work", ollama_host=f"http://127.0.0.1:{free_port()}",
                    ui={"port": free_port(), "auth_user": "alice", "auth_password": "s3cret"})
    demo = launch(settings, LocalStore(tmp_path / "artifacts"), block=False)
    try:
        assert (demo.server_name, demo.share) == ("127.0.0.1", False)
        url = f"http://127.0.0.1:{settings.ui.port}"
        assert httpx.get(f"{url}/config").status_code == 401
        with httpx.Client() as client:
            assert client.post(f"{url}/login", data={"username": "alice", "password": "wrong"}).status_code == 400
            assert client.post(f"{url}/login", data={"username": "alice", "password": "s3cret"}).status_code == 200
            assert client.get(f"{url}/config").status_code == 200
    finally:
        demo.close()
