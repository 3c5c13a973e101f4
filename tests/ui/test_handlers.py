"""The UI's handlers called directly: validation, highlighting of a scored answer, a backend that is down,
the training curves, and the settings that keep the app private."""

from __future__ import annotations

import html
import re

import pytest

from services.evaluator.score import build
from services.evaluator.scoring.fabrication import fabricated
from services.evaluator.settings import EvalConfig
from services.evaluator.ui import handlers, highlight
from services.evaluator.ui.backends import RAG, SCRATCH, Backends
from services.evaluator.ui.settings import UIConfig, UISettings
from shared.schemas.eval import FactMatch, KeyFact
from shared.schemas.model import METRICS_COLUMNS, MetricsRow
from shared.servers import free_port
from shared.settings import SettingsError, load
from shared.store import LocalStore

RILUZOLE_FACTS = [KeyFact(text=t) for t in
                  ["glutamate", "excitotoxicity", "inhibits glutamate release", "sodium channels"]]


@pytest.mark.parametrize("text, problem", [
    ("", "type a question"),
    ("   \n\t ", "type a question"),
    (None, "type a question"),
    ("x" * 1001, "1001 characters long; the limit is 1000"),
    ("What is ALS?\x00", "U+0000"),
    ("What\x1b[31m is ALS?", "U+001B"),
])
def test_bad_questions_are_refused_with_a_reason(text, problem):
    with pytest.raises(handlers.InvalidQuestion, match=re.escape(problem)):
        handlers.validate_question(text, max_chars=1000)


def test_a_good_question_is_stripped_and_keeps_newlines_and_tabs():
    assert handlers.validate_question("  What is\tALS?\nAnd SOD1?  ", 1000) == "What is\tALS?\nAnd SOD1?"
    assert handlers.validate_question("x" * 1000, 1000) == "x" * 1000


@pytest.fixture(scope="module")
def scored():
    """A real scorer's verdicts on an answer that states two facts, negates one and omits one."""
    scorer, lexicon = build(EvalConfig(use_embeddings=False), ["Riluzole reduces glutamate excitotoxicity in ALS."])
    answer = ("Riluzole protects motor neurons from glutamate excitotoxicity. It does not block sodium channels.\n"
              "It is often combined with zorbalimab.")
    return answer, scorer.judge("How does riluzole work in ALS?", RILUZOLE_FACTS, answer), fabricated(answer, lexicon)


def test_highlighting_marks_present_negated_and_fabricated_words(scored):
    answer, facts, fab = scored
    segments = highlight.segments(answer, facts, fab)
    assert "".join(s.text for s in segments) == answer
    marked = {(s.text, s.label, s.fabricated) for s in segments if s.label or s.fabricated}
    assert marked == {
        ("glutamate", highlight.PRESENT, False),
        ("excitotoxicity", highlight.PRESENT, False),
        ("sodium channels", highlight.NEGATED, False),
        ("zorbalimab", None, True),
    }
    page = highlight.answer_html(answer, facts, fab)
    assert '<mark class="negated" title="negated: sodium channels">sodium channels</mark>' in page
    assert '<mark class="fabricated"' in page and "<br>" in page


def test_fact_table_lists_missing_facts_too(scored):
    _, facts, fab = scored
    table = highlight.facts_html(facts, fab)
    assert table.count('<tr class="present">') == 2
    assert '<tr class="missing"><td>inhibits glutamate release</td><td>✗ missing</td>' in table
    assert '<tr class="negated"><td>sodium channels</td><td>⊘ negated</td>' in table
    assert "<b>2 of 4</b> key facts present" in table and "zorbalimab" in table


def test_sentence_is_marked_when_the_fact_is_paraphrased():
    answer = "The drug lowers the release of glutamate. Unrelated."
    match = FactMatch(fact="inhibits glutamate release", present=True, method="tokens",
                      evidence="the drug lowers the release of glutamate")
    (first, *_rest) = [s for s in highlight.segments(answer, [match], []) if s.label]
    assert first.text == "The drug lowers the release of glutamate." and first.label == highlight.PRESENT


def test_answer_text_is_escaped():
    answer = 'Riluzole <script>alert("x")</script> & edaravone.\nSecond <b>line</b>.'
    match = FactMatch(fact='riluzole "<i>approved</i>"', present=True, method="tokens", evidence="riluzole")
    shown = highlight.answer_html(answer, [match], [])
    assert "<script>" not in shown and "<b>" not in shown and "<i>" not in shown
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; edaravone." in shown
    assert 'title="present: riluzole &quot;&lt;i&gt;approved&lt;/i&gt;&quot;"' in shown  # a fact is escaped too
    # every character of the answer is shown, once, in its order
    assert html.unescape(re.sub(r"<br>", "\n", re.sub(r"<(?!br>)[^>]+>", "", shown))) == answer


@pytest.fixture
def down(tmp_path) -> Backends:
    """Backends whose Ollama address has nobody listening."""
    settings = load(UISettings, work_dir=tmp_path / "work", ollama_host=f"http://127.0.0.1:{free_port()}",
                    eval={"scratch_model": "als-lm"})
    return Backends(settings, LocalStore(tmp_path / "artifacts"))


def test_backend_down_is_a_message_and_the_next_question_still_runs(down):
    for _ in range(2):
        *_, (history, _, status) = handlers.chat(down, 1000, "What is ALS?", SCRATCH, 0.7, 40, 0.9, 16, [])
        assert history == [] and status.startswith("⚠ Ollama at http://127.0.0.1:") and "not answering" in status
    *_, (history, _, status) = handlers.chat(down, 1000, "What is ALS?", RAG, 0.7, 40, 0.9, 16, [])
    assert "RAG baseline is unavailable" in status and "rag-index" in status


def test_compare_reports_each_system_that_is_down(down):
    *_, last = handlers.compare(down, None, {}, 1000, "What is ALS?")
    status = last[-1]
    assert "not answering" in status and "RAG baseline is unavailable" in status


def test_invalid_question_never_reaches_a_backend(down):
    (only,) = list(handlers.compare(down, None, {}, 10, "far too long a question"))
    assert only[-1] == "⚠ The question is 23 characters long; the limit is 10. Please shorten it."


def test_training_curves_read_a_live_csv_and_ignore_a_half_written_row(tmp_path):
    path = tmp_path / "train" / "tiny-abc" / "metrics.csv"
    path.parent.mkdir(parents=True)
    rows = [MetricsRow(step=s, train_loss=5.0 - s / 10, val_loss=4.8 if s == 20 else None, lr=1e-3 * s / 20,
                       tokens_seen=s * 512, tokens_per_s=900.0 + s, elapsed_s=s * 0.5) for s in (10, 20)]
    path.write_text(",".join(METRICS_COLUMNS) + "\n" + "".join(",".join(r.csv_cells()) + "\n" for r in rows)
                    + "30,4.1,")
    assert handlers.find_metrics_csv(None, tmp_path) == path
    loss, lr, tput, status = handlers.training_curves(str(path))
    assert sorted(loss.series.unique()) == ["train_loss", "val_loss"]
    assert len(loss) == 3 and list(lr.step) == [10, 20] and list(tput.value) == [910.0, 920.0]
    assert "step **20**" in status and "best val loss 4.8" in status
    *_, missing = handlers.training_curves(str(tmp_path / "nope.csv"))
    assert missing.startswith("⚠") and "does not exist" in missing


def test_defaults_bind_loopback_and_auth_needs_both_halves():
    assert UIConfig().host == "127.0.0.1"
    with pytest.raises(SettingsError, match="auth_user and auth_password"):
        load(UISettings, ui={"auth_user": "alice"})
    assert load(UISettings, ui={"auth_user": "a", "auth_password": "s3cret"}).ui.auth_password.get_secret_value() == "s3cret"
