"""End to end in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser download):
each page of the served app asked something, its answer checked, a screenshot saved."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.evaluator.inputs import load_benchmark
from services.evaluator.review import previous_reviews
from services.evaluator.settings import BENCHMARK
from shared import runs
from shared.schemas.eval import ScoreFile
from shared.schemas.model import METRICS_COLUMNS, MetricsRow
from tests.ui.conftest import probe_item, publish_probe_items, publish_probe_run

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "ui"
TIMEOUT_MS = 150_000  # one answer from Gemma 270M on a busy 2-core machine
DRUG_001 = next(i for i in load_benchmark(BENCHMARK) if i.id == "drug-001")


def row(step: int) -> str:
    r = MetricsRow(step=step, train_loss=6.0 - step / 50, val_loss=5.9 - step / 50 if step % 20 == 0 else None,
                   lr=6e-4 * min(1.0, step / 20), tokens_seen=step * 1024, tokens_per_s=1500.0 + step,
                   elapsed_s=step * 0.7)
    return ",".join(r.csv_cells()) + "\n"


@pytest.fixture(scope="module")
def metrics_csv(evaluation) -> Path:
    """A trainer's live CSV where the Training page looks for it (``<work_dir>/train/*/metrics.csv``)."""
    settings, _ = evaluation
    path = settings.work_dir / "train" / "tiny-ui" / "metrics.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(",".join(METRICS_COLUMNS) + "\n" + "".join(row(s) for s in range(10, 110, 10)))
    return path


@pytest.fixture(scope="module")
def page(metrics_csv, app_url):
    if not CHROMIUM.is_file():
        pytest.fail("Debian's chromium is not installed: `apt-get install chromium` (scripts/setup.sh)")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1100})
        tab.set_default_timeout(TIMEOUT_MS)
        tab.goto(app_url)
        yield tab
        browser.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_disclaimer_is_always_visible(page):
    for name in ("Chat", "Compare", "Training"):
        open_tab(page, name)
        assert page.locator("#disclaimer").is_visible()
        assert "not a medical resource" in page.locator("#disclaimer").inner_text()


def test_chat_streams_an_answer_and_refuses_an_empty_question(page):
    open_tab(page, "Chat")
    page.locator("#chat-ask").click()
    page.wait_for_selector("#chat-status :text('Please type a question first.')")
    box = page.locator("#chat-question textarea")
    box.fill("What is")
    box.press("Shift+Enter")  # adds a line, sends nothing
    box.press_sequentially("ALS?")
    assert box.input_value() == "What is\nALS?"
    assert "Please type a question first." in page.locator("#chat-status").inner_text()
    box.press("Enter")  # sends
    page.wait_for_selector("#chat-status :text('Answered by the from-scratch model')")
    bot = page.locator("#chat-conversation .bot").last
    assert bot.inner_text().strip()
    page.screenshot(path=SHOTS / "chat.png", full_page=True)


def test_compare_highlights_key_facts_of_a_benchmark_question(page):
    open_tab(page, "Compare")
    page.locator("#compare-question textarea").fill("How does riluzole work in ALS?")
    page.locator("#compare-question textarea").press("Enter")  # Enter sends, like the Compare button
    page.wait_for_selector("#compare-status :text('key facts checked')")
    answered = 0
    for system in ("scratch", "rag"):
        if not page.locator(f"#compare-{system}").inner_text().strip():
            continue  # a model may say nothing; the status says so (checked below)
        answered += 1
        verdicts = page.locator(f"#compare-{system}-facts table.facts tbody tr")
        assert verdicts.count() == len(DRUG_001.key_facts)  # each: present, negated, other subject or missing
        found = page.locator(f"#compare-{system}-facts tr.present, #compare-{system}-facts tr.negated").count()
        fabricated = page.locator(f"#compare-{system}-facts mark.fabricated").count()
        assert (page.locator(f"#compare-{system} mark").count() > 0) == (found + fabricated > 0)
    assert answered == 2 or "returned an empty answer" in page.locator("#compare-status").inner_text()
    # Greedy Gemma 270M states a key fact or invents a drug name ("Liruzole"): something is marked.
    assert page.locator("#compare-scratch mark, #compare-rag mark").count() > 0
    page.get_by_text("RAG's retrieved chunks").click()
    assert "source `riluzole`" in page.locator("#compare-sources").inner_text() or \
        "riluzole" in page.locator("#compare-sources").inner_text()
    page.screenshot(path=SHOTS / "compare.png", full_page=True)


def test_benchmark_loads_the_scored_runs_and_shows_an_answer(page):
    open_tab(page, "Benchmark")
    page.locator("#bench-load").click()
    page.wait_for_selector("#bench-status :text('mean accuracy')")
    ids = page.locator('#bench-table [data-testid^="cell-"][data-testid$="-1"]')  # the id column
    assert ids.count() == 4  # 2 questions x 2 systems
    ids.first.click()
    page.wait_for_selector("#bench-answer .answer")
    page.screenshot(path=SHOTS / "benchmark.png", full_page=True)


# Probe items of the two questions the fixture asked (its eval runs' limit of 2), as probe-items cuts them;
# the log-likelihoods are made up (the page's arithmetic is checked in test_pages.py).
PROBE = [
    probe_item("drug-001", 0, "memorisation", "Riluzole is thought to protect motor neurons from glutamate",
               ["receptors", "excitotoxicity", "release", "transporters"], 1, subject="riluzole"),
    probe_item("drug-001", 2, "generalisation", "it inhibits glutamate release and blocks voltage-gated",
               ["calcium channels", "potassium channels", "sodium channels"], 2, bucket="validation_only",
               train_docs=0, source="reference_answer", subject="riluzole"),
    probe_item("gene-001", 2, "memorisation", "Mutations in SOD1 were reported in familial ALS in",
               ["1991", "1993", "2006", "2011"], 1, bucket="5+", train_docs=9, subject="sod1"),
]
SCRATCH_PROBE = {
    "ngram-2": {"drug-001.0.mem": [-6.1, -9.4, -5.2, -8.8], "drug-001.2.gen": [-7.7, -8.1, -7.9],
                "gene-001.2.mem": [-5.5, -5.9, -6.4, -6.0]},
    "scratch@init": {"drug-001.0.mem": [-14.2, -21.7, -13.9, -20.8], "drug-001.2.gen": [-16.0, -17.2, -16.4],
                     "gene-001.2.mem": [-13.1, -13.3, -13.0, -13.4]},
    "scratch": {"drug-001.0.mem": [-7.4, -6.2, -6.9, -9.1], "drug-001.2.gen": [-9.8, -10.3, -9.9],
                "gene-001.2.mem": [-6.7, -5.8, -6.6, -6.9]},
}
GGUF_PROBE = {"gguf-f32": {i: [v + 0.001 for v in lls] for i, lls in SCRATCH_PROBE["scratch"].items()}}


def test_benchmark_shows_the_probe_candidates_of_the_selected_item(page, evaluation):
    settings, store = evaluation
    scored = {s.id for system in ("scratch", "rag") for s in ScoreFile.model_validate_json(
        store.get_bytes(runs.latest(store, f"score-{system}").output("scores.json").key)).items}
    assert scored == {i.benchmark_id for i in PROBE}
    items_run = publish_probe_items(store, settings.work_dir, PROBE)
    scratch = publish_probe_run(store, settings.work_dir, "probe-scratch", items_run, PROBE, SCRATCH_PROBE)
    gguf = publish_probe_run(store, settings.work_dir, "probe-gguf", items_run, PROBE, GGUF_PROBE)
    open_tab(page, "Benchmark")
    page.locator("#bench-load").click()
    page.wait_for_selector("#bench-status :text('probe runs shown')")
    first = page.locator('#bench-table [data-testid^="cell-"][data-testid$="-1"]').first
    assert first.inner_text().strip() == "drug-001"
    first.click()
    page.wait_for_selector("#bench-probe table.probe")
    stems = page.locator("#bench-probe .probe-stem")
    assert [stems.nth(i).inner_text() for i in range(stems.count())] == [f"{i.stem} ____" for i in PROBE[:2]]
    columns = page.locator("#bench-probe table.probe").first.locator("thead tr").first.locator("th")
    assert [columns.nth(i).inner_text() for i in range(3)] == ["candidate", gguf.run, scratch.run]
    cells = page.locator("#bench-probe table.probe").first.locator("tr.true").locator("th, td")
    assert [cells.nth(i).inner_text().strip() for i in range(5)] == [
        "✓ excitotoxicity", "-6.20 #1", "-9.40 #4", "-21.70 #4", "-6.20 #1"]
    page.screenshot(path=SHOTS / "benchmark-probe.png", full_page=True)

    page.locator(f'#bench-probe-runs .token:has-text("{gguf.run}") .token-remove').click()  # one run left
    from playwright.sync_api import expect

    expect(page.locator("#bench-probe table.probe").first.locator("tr.true td")).to_have_count(3, timeout=TIMEOUT_MS)
    assert "gguf-f32" not in page.locator("#bench-probe").inner_text()


def test_benchmark_run_button_reuses_an_identical_run_and_reloads_the_table(page, evaluation):
    _, store = evaluation
    before = len(runs.runs(store, "eval-rag"))
    open_tab(page, "Benchmark")
    page.locator("#bench-run-limit input").fill("2")  # the fixture's own run: rag, 2 questions
    page.locator("#bench-run").click()
    page.wait_for_selector("#bench-status :text('unchanged since an identical run, reused')")
    assert "mean accuracy" in page.locator("#bench-status").inner_text()
    assert page.locator('#bench-table [data-testid^="cell-"][data-testid$="-1"]').count() == 4
    assert len(runs.runs(store, "eval-rag")) == before, "an identical run must not be asked again"


def test_review_saves_to_the_store_and_resumes(page, evaluation):
    settings, store = evaluation
    open_tab(page, "Review")
    page.locator("#review-reviewer textarea, #review-reviewer input").first.fill("ui-test")
    page.locator("#review-start").click()
    page.wait_for_selector("#review-progress :text('0 of 2 sampled responses reviewed')")
    page.locator("#review-correctness").get_by_text("incorrect", exact=True).click()
    page.locator("#review-save").click()
    page.wait_for_selector("#review-status :text('needs a failure mode')")
    page.locator("#review-correctness").get_by_text("refusal", exact=True).click()
    page.locator("#review-save").click()
    page.wait_for_selector("#review-progress :text('1 of 2 sampled responses reviewed')")
    (saved,) = previous_reviews(store, "scratch", settings.work_dir / "check")
    assert saved.correctness == "refusal" and saved.reviewer == "ui-test"
    page.reload()
    open_tab(page, "Review")
    page.locator("#review-start").click()
    page.wait_for_selector("#review-progress :text('1 of 2 sampled responses reviewed')")
    page.screenshot(path=SHOTS / "review.png", full_page=True)


def test_training_curves_follow_the_live_csv(page, metrics_csv):
    open_tab(page, "Training")
    from playwright.sync_api import expect

    expect(page.locator("#train-status")).to_contain_text("step 100", timeout=TIMEOUT_MS)
    with open(metrics_csv, "a") as fh:
        fh.write(row(120))
    expect(page.locator("#train-status")).to_contain_text("step 120", timeout=TIMEOUT_MS)
    assert page.locator("#train-status").inner_text().count("best val loss 3.5") == 1
    page.screenshot(path=SHOTS / "training.png", full_page=True)


def test_training_page_plots_a_stored_train_run(page, evaluation):
    _, store = evaluation
    from playwright.sync_api import expect

    csv = ",".join(METRICS_COLUMNS) + "\n" + "".join(row(s) for s in range(10, 60, 10))
    manifest, _ = runs.run_stage(store, "train", {"browser-test": True}, [],
                                 lambda w, _s: w.put_bytes("metrics.csv", csv.encode()),
                                 work_dir=evaluation[0].work_dir)
    open_tab(page, "Training")
    page.locator("#train-rescan").click()
    page.locator("#train-run input").click()
    page.get_by_role("option", name=manifest.run).click()
    expect(page.locator("#train-status")).to_contain_text(f"{manifest.run} · step 50", timeout=TIMEOUT_MS)
    page.wait_for_timeout(2500)  # timer ticks (1 s) must not replace the stored run with the live CSV
    assert manifest.run in page.locator("#train-status").inner_text()
    page.screenshot(path=SHOTS / "training-stored.png", full_page=True)
