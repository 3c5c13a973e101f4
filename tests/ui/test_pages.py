"""The Benchmark and Review pages' functions on a store holding really scored runs (no model needed:
the responses are written here, the scorer is the real one without its embedding fallback), the
Benchmark page's probe panel on stored probe runs, and the served app's privacy settings."""

from __future__ import annotations

from html.parser import HTMLParser

import httpx
import pandas as pd
import pytest

from services.evaluator.settings import for_run
from services.evaluator.stages import score as scoring
from services.evaluator.ui import benchmark, probe, review, training
from services.evaluator.ui.app import launch
from services.evaluator.ui.settings import UISettings
from shared import runs
from shared.schemas.eval import Response
from shared.schemas.model import METRICS_COLUMNS, MetricsRow
from shared.servers import free_port
from shared.settings import load
from shared.store import LocalStore
from tests.ui.conftest import probe_item, publish_corpus, publish_probe_items, publish_probe_run

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


class ProbeTables(HTMLParser):
    """The text of every cell of the panel's tables: one list of rows (lists of cells) per table."""

    def __init__(self, markup: str):
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.cell: str | None = None
        self.feed(markup)

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("th", "td"):
            self.cell = ""

    def handle_endtag(self, tag):
        if tag in ("th", "td"):
            self.tables[-1][-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


# Out of order on purpose: the panel shows fact by fact, memorisation before generalisation.
GENE_PROBE = [
    probe_item("gene-001", 2, "generalisation", "mutations in SOD1 were reported in familial ALS in",
               ["1991", "1993", "2006"], 1, bucket="validation_only", train_docs=0, source="reference_answer"),
    probe_item("gene-001", 0, "memorisation", "The first gene linked to ALS was", ["C9orf72", "SOD1", "FUS"], 1,
               bucket="5+", train_docs=12),
    probe_item("gene-001", 2, "memorisation", "Mutations in SOD1 were first reported in", ["1993", "1991", "2006"], 0),
]
SCRATCH_SCORES = {
    "ngram-2": {"gene-001.0.mem": [-1.0, -2.0, -3.0], "gene-001.2.mem": [-2.0, -1.0, -2.0],  # a tie counts against
                "gene-001.2.gen": [-2.5, -3.5, -4.5]},
    "scratch": {"gene-001.0.mem": [-4.0, -0.5, -3.0], "gene-001.2.mem": [-1.25, -2.0, -6.0],
                "gene-001.2.gen": [-3.0, -1.5, -4.0]},
}
GGUF_SCORES = {"gguf@step1": {"gene-001.0.mem": [-4.1, -0.6, -3.0], "gene-001.2.mem": [-1.3, -2.1, -6.0]}}


@pytest.fixture
def probed(tmp_path):
    """An older and a newer probe-scratch run and a run of another probe stage (it scored fewer items),
    all of one probe-items run."""
    store = LocalStore(tmp_path / "artifacts")
    items_run = publish_probe_items(store, tmp_path / "work", GENE_PROBE)
    old = publish_probe_run(store, tmp_path / "work", "probe-scratch", items_run, GENE_PROBE,
                            {"scratch": SCRATCH_SCORES["scratch"]})
    new = publish_probe_run(store, tmp_path / "work", "probe-scratch", items_run, GENE_PROBE, SCRATCH_SCORES)
    gguf = publish_probe_run(store, tmp_path / "work", "probe-gguf", items_run, GENE_PROBE, GGUF_SCORES)
    return store, tmp_path / "cache", items_run, (old, new, gguf)


def test_probe_panel_shows_each_candidates_likelihood_and_rank_under_every_probed_system(probed):
    store, cache, items_run, (old, new, gguf) = probed
    labels, chosen = probe.choices(store)
    assert [run for _, run in labels] == [gguf.run, new.run, old.run]  # every probe run, newest first
    assert chosen == [gguf.run, new.run]  # the latest of each probe stage; probe-items is no probe run
    probes = probe.load(store, chosen, cache)
    assert probes.notes == [] and probes.stored == 3
    assert f"`{new.run}` (2 systems)" in probe.summary(probes)
    panel = probe.panel_html(probes, "gene-001")
    assert f"3 probe items of {items_run.run}" in panel  # the items the runs read, not merely the latest
    stems = [i.stem for i in sorted(GENE_PROBE, key=lambda i: (i.fact_index, i.form != "memorisation"))]
    positions = [panel.index(stem) for stem in stems]
    assert positions == sorted(positions)
    assert "<b>memorisation</b> · key fact 1: “SOD1” · exposure <b>5+</b> (12 training" in panel
    assert "<b>generalisation</b> · key fact 3: “1993” · exposure <b>validation_only</b> (0 training" in panel
    first, second, third = ProbeTables(panel).tables
    assert first[:2] == [["candidate", gguf.run, new.run], ["gguf@step1", "ngram-2", "scratch"]]
    assert first[2:] == [["C9orf72", "-4.10 #3", "-1.00 #1", "-4.00 #3"],
                         ["✓ SOD1", "-0.60 #1", "-2.00 #2", "-0.50 #1"],
                         ["FUS", "-3.00 #2", "-3.00 #3", "-3.00 #2"],
                         ["greedy continuation", "“gguf@step1 continues”", "“ngram-2 continues”",
                          "“scratch continues”"]]
    assert second[2] == ["✓ 1993", "-1.30 #1", "-2.00 #3", "-1.25 #1"]  # the bigram ties 2006: rank 3
    assert third[2:4] == [["1991", "—", "-2.50 #1", "-3.00 #2"], ["✓ 1993", "—", "-3.50 #2", "-1.50 #1"]]
    assert '<tr class="true"><th title="the true value">✓ SOD1</th>' in panel

    only_old = probe.load(store, [old.run], cache)
    assert ProbeTables(probe.panel_html(only_old, "gene-001")).tables[0][1] == ["scratch"]
    assert "No probe items for <code>drug-001</code>" in probe.panel_html(probes, "drug-001")
    unreadable = probe.load(store, [new.run, "probe-scratch/nope"], cache)
    assert len(unreadable.runs) == 1 and "cannot read the probe run probe-scratch/nope" in unreadable.notes[0]
    assert "probe-scratch/nope" in probe.panel_html(unreadable, "gene-001")
    assert "No probe run chosen" in probe.panel_html(probe.load(store, [], cache), "gene-001")

    mismatched = publish_probe_run(store, cache.parent / "work", "probe-scratch", items_run, GENE_PROBE,
                                   {"scratch": {"gene-001.0.mem": [-1.0, -2.0]}})
    assert "gene-001.0.mem (scratch) does not match the items of" in probe.load(store, [mismatched.run], cache).notes[0]

    # A run that read other items (a newer probe-items run) is shown against those items, in its own group.
    reworded = [GENE_PROBE[1].model_copy(update={"stem": "The gene found first in ALS was"})]
    other_items = publish_probe_items(store, cache.parent / "work", reworded)
    rag = publish_probe_run(store, cache.parent / "work", "probe-rag", other_items, reworded,
                            {"rag": {"gene-001.0.mem": [-2.0, -1.0, -3.0]}})
    both = probe.panel_html(probe.load(store, [new.run, rag.run], cache), "gene-001")
    assert f"1 probe item of {other_items.run}" in both and "The gene found first in ALS was" in both
    tables = ProbeTables(both).tables
    assert len(tables) == 4 and tables[3][:3] == [["candidate", rag.run], ["rag"], ["C9orf72", "-2.00 #2"]]


def test_probe_panel_says_so_when_the_store_has_no_probe_run(tmp_path):
    store = LocalStore(tmp_path / "artifacts")
    publish_probe_items(store, tmp_path / "work", GENE_PROBE)  # items alone are not a probe run
    assert probe.choices(store) == ([], [])
    probes = probe.load(store, [], tmp_path / "cache")
    panel = probe.panel_html(probes, "gene-001")
    assert "no probe run in the store yet" in panel and "<code>als-lm probe run</code>" in panel
    assert probe.summary(probes) == f"⚠ {probe.NO_PROBE}"


def test_probe_panel_escapes_stored_text(tmp_path):
    store = LocalStore(tmp_path / "artifacts")
    hostile = probe_item("drug-001", 0, "memorisation", '<script>alert("stem")</script> & riluzole blocks',
                         ["<img src=x onerror=alert(1)>", "sodium channels", "</td></tr><b>x"], 1,
                         source='doc"><i>')
    items_run = publish_probe_items(store, tmp_path / "work", [hostile])
    run = publish_probe_run(store, tmp_path / "work", "probe-scratch", items_run, [hostile],
                            {"<sys>": {hostile.id: [-1.0, -2.0, -3.0]}})
    panel = probe.panel_html(probe.load(store, [run.run], tmp_path / "cache"), "drug-001")
    assert "<script>" not in panel and "<img" not in panel and "<sys>" not in panel and "<i>" not in panel
    assert "&lt;script&gt;alert(&quot;stem&quot;)&lt;/script&gt; &amp; riluzole blocks" in panel
    (table,) = ProbeTables(panel).tables
    assert [row[0] for row in table[2:5]] == ["<img src=x onerror=alert(1)>", "✓ sodium channels", "</td></tr><b>x"]
    assert table[1] == ["<sys>"] and table[5] == ["greedy continuation", "“<sys> continues”"]


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
