"""Each processing step on crafted documents: what it keeps, what it removes, and why."""

from __future__ import annotations

import random

import pytest

from services.processor.clean import Abbreviations, MinLength, Normalize, StripMarkup
from services.processor.dedup import MinHashSignature, NearDedup, ParagraphDedup, shingles
from services.processor.pipeline import Document, RunLog, chain
from services.processor.process import process_corpus
from services.processor.settings import ProcessConfig
from services.processor.split import validation_ids
from services.processor.volatile import VolatileFilter, sentences
from tests.processor.raw import SAMPLE

CFG = ProcessConfig()
VOCAB = ["motor", "neuron", "axon", "protein", "gene", "variant", "trial", "patient", "muscle", "weakness", "spinal", "cord", "cortex", "glutamate", "receptor", "survival", "cohort", "placebo", "dose", "biomarker", "fluid", "plasma", "decline", "onset", "bulbar", "limb", "respiratory", "failure", "genetic", "familial", "sporadic", "pathology", "aggregate", "inclusion", "RNA", "splicing", "toxicity"]


def doc(id_: str, text: str, category: str = "research") -> Document:
    return Document(id=id_, source="test", category=category, title=id_, text=text)


def run_steps(steps, docs):
    log = RunLog([])
    out = list(chain(steps, docs, log))
    return out, log


def jaccard(a: str, b: str, n: int) -> float:
    """Exact Jaccard similarity of two texts' shingle sets: what MinHash estimates."""
    sa, sb = shingles(a, n), shingles(b, n)
    return len(sa & sb) / len(sa | sb)


def random_words(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(VOCAB) + str(rng.randrange(50)) for _ in range(n)]


def variant_at(base: list[str], target: float, seed: int) -> str:
    """``base`` with evenly spread words replaced until the 5-gram Jaccard is just above ``target``."""
    fresh = random_words(len(base), seed)
    text = " ".join(base)
    for k in range(1, len(base)):
        words = list(base)
        for i in range(k):
            pos = (i * len(base)) // k + len(base) // (2 * k)
            words[pos] = fresh[pos]
        candidate = " ".join(words)
        if jaccard(" ".join(base), candidate, CFG.shingle_words) < target:
            return text
        text = candidate
    raise AssertionError("no variant found")


def test_near_duplicate_at_jaccard_0_9_is_removed_and_0_7_is_kept():
    base = random_words(600, seed=1)
    near, far = variant_at(base, 0.90, seed=2), variant_at(base, 0.70, seed=3)
    original = " ".join(base)
    assert jaccard(original, near, CFG.shingle_words) == pytest.approx(0.90, abs=0.02)
    assert jaccard(original, far, CFG.shingle_words) == pytest.approx(0.70, abs=0.02)

    steps = [MinHashSignature(CFG.num_perm, CFG.shingle_words), NearDedup(CFG.minhash_threshold, CFG.num_perm)]
    out, log = run_steps(steps, [doc("a", original), doc("near", near), doc("far", far)])

    assert [d.id for d in out] == ["a", "far"]
    (record,) = log.excluded
    assert record["step"] == "near_dedup" and record["doc_id"] == "near" and record["duplicate_of"] == "a"
    assert record["jaccard"] >= 0.85
    assert log.stats.steps["near_dedup"]["documents_removed:near_duplicate"] == 1


def test_exact_duplicate_paragraphs_are_removed_after_whitespace_normalisation():
    shared_para = "Riluzole reduces glutamate release and extends survival by about three months."
    a = doc("a", f"Background\n\n{shared_para}\n\nFirst document's own paragraph about SOD1 and tofersen therapy.")
    b = doc("b", f"Background\n\n{shared_para.replace(' ', '  ')}\n\nSecond document's own words on C9orf72 repeats.")
    out, log = run_steps([ParagraphDedup(CFG.paragraph_min_words)], [a, b])

    assert shared_para in out[0].text
    assert out[1].text == "Background\n\nSecond document's own words on C9orf72 repeats."  # heading kept
    (record,) = log.excluded
    assert (record["step"], record["unit"], record["reason"], record["doc_id"]) == (
        "paragraph_dedup", "paragraph", "exact_duplicate", "b")


def test_document_left_with_only_duplicate_paragraphs_is_dropped():
    para = "Edaravone is a free radical scavenger given intravenously in treatment cycles."
    out, log = run_steps([ParagraphDedup(CFG.paragraph_min_words)], [doc("a", para), doc("b", f"Note\n\n{para}")])
    assert [d.id for d in out] == ["a"]
    assert log.excluded[-1]["reason"] == "all_paragraphs_duplicated"


def test_volatile_sentences_are_removed_and_logged_with_their_pattern():
    text = (
        "ALS affects upper and lower motor neurons. Currently, three drugs are approved in Europe. "
        "As of March 2024, the trial was enrolling. Call 1-800-555-0142 for help.\n"
        "Office hours: Monday to Friday, 9 a.m. to 5 p.m.\n\n"
        "Write to info@example.org for a brochure. The kit costs $49.99 per month. "
        "Contact us today. The clinic is open on Saturdays. Smith et al. described TDP-43 inclusions.\n\n"
        "Last updated: 3 May 2024"
    )
    out, log = run_steps([VolatileFilter(CFG.volatile_patterns)], [doc("a", text)])
    assert out[0].text == ("ALS affects upper and lower motor neurons.\n\n"
                           "Smith et al. described TDP-43 inclusions.")
    reasons = [(r["reason"], r["text"]) for r in log.excluded]
    assert [r for r, _ in reasons] == ["currently", "as_of_date", "phone", "hours", "email", "price",
                                       "contact_us", "schedule", "last_updated"]
    assert ("phone", "Call 1-800-555-0142 for help.") in reasons


def test_a_volatile_pattern_re2_cannot_run_is_refused_by_name():
    with pytest.raises(ValueError, match=r"pattern 'ids' is not a valid RE2 regex \(no lookbehind.*invalid perl operator"):
        ProcessConfig(volatile_patterns={"ids": r"(?<!\d)\d{6}"})


def test_phone_numbers_inside_longer_digit_runs_are_not_phone_numbers():
    out, log = run_steps([VolatileFilter(CFG.volatile_patterns)],
                         [doc("a", "Trial NCT0123456789 enrolled 210 people. Call (800) 555-0142 now.")])
    assert out[0].text == "Trial NCT0123456789 enrolled 210 people."
    assert [r["reason"] for r in log.excluded] == ["phone"]


def test_sentence_split_does_not_break_after_abbreviations():
    assert sentences("Smith et al. found it. See Fig. 2 for details. E.g. this one.") == [
        "Smith et al. found it.", "See Fig. 2 for details.", "E.g. this one."]


def test_markup_is_stripped_from_pages_fragments_and_entities():
    page = ("<!DOCTYPE html><html><head><title>ALS</title><script>var x=1;</script></head><body>"
            "<nav><a href='/'>Home</a> | <a href='/donate'>Donate</a></nav><main><article><h1>What is ALS?</h1>"
            + "".join(f"<p>Paragraph {i}: amyotrophic lateral sclerosis is a progressive disease of the motor "
                      f"neurons that control voluntary muscles, and it has no cure.</p>" for i in range(4))
            + "</article></main><footer>Copyright 2024 Example Foundation</footer></body></html>")
    fragment = "The <i>SOD1</i> gene<br>encodes an enzyme.<table><tr><td>1</td></tr></table>"
    entities = "Riluzole &amp; edaravone &mdash; both approved."
    out, log = run_steps([StripMarkup(), Normalize()], [doc("p", page), doc("f", fragment), doc("e", entities)])
    page_text, frag_text, ent_text = (d.text for d in out)
    assert "progressive disease of the motor neurons" in page_text
    assert not any(s in page_text for s in ("Donate", "Copyright", "var x", "<p>"))
    assert frag_text == "The SOD1 gene\n\nencodes an enzyme."
    assert ent_text == "Riluzole & edaravone — both approved."
    assert log.stats.steps["strip_markup"]["documents_changed:html_page"] == 1


def test_normalize_applies_nfc_and_one_kind_of_whitespace():
    text = "Cafe\u0301 \u00a0 study\u200b \t results\r\n\r\n\r\n\n  Second   paragraph  "
    out, log = run_steps([Normalize()], [doc("a", text)])
    assert out[0].text == "Café study results\n\nSecond paragraph"
    assert log.stats.steps["normalize"]["documents_changed:nfc"] == 1


def test_abbreviations_give_the_long_form_at_the_first_plain_mention_only():
    only_short = doc("a", "The ALS Association funds care. ALS affects motor neurons. ALS progresses.")
    has_long = doc("b", "Amyotrophic lateral sclerosis (ALS) is rare. ALS affects motor neurons.")
    title_case = doc("c", "People with Amyotrophic Lateral Sclerosis and A.L.S. clinics.")
    out, _ = run_steps([Abbreviations()], [only_short, has_long, title_case])
    assert out[0].text == ("The ALS Association funds care. Amyotrophic lateral sclerosis (ALS) affects motor "
                           "neurons. ALS progresses.")
    assert out[1].text == has_long.text
    assert out[2].text == "People with amyotrophic lateral sclerosis and ALS clinics."


def test_documents_under_min_tokens_are_dropped_with_their_length():
    out, log = run_steps([MinLength(100)], [doc("short", "word " * 99), doc("ok", "word " * 100)])
    assert [d.id for d in out] == ["ok"]
    assert log.excluded[0]["reason"] == "under_100_words" and log.excluded[0]["words"] == 99


def test_split_is_by_document_stratified_and_seeded():
    docs = [(f"{cat}-{i}", cat) for cat, n in (("research", 120), ("narrative", 37), ("supplementary", 5))
            for i in range(n)]
    val = validation_ids(docs, 0.1, seed=1337)
    train = {d for d, _ in docs} - val
    assert not val & train and len(val) + len(train) == len(docs)
    for cat, n in (("research", 120), ("narrative", 37), ("supplementary", 5)):
        assert sum(v.startswith(cat) for v in val) == int(n * 0.1 + 0.5)
    assert validation_ids(list(reversed(docs)), 0.1, seed=1337) == val  # input order does not matter
    assert validation_ids(docs, 0.1, seed=7) != val


def test_workers_do_not_change_the_output(tmp_path):
    raw = sorted(SAMPLE.glob("*.jsonl"))[:2]  # 95 documents: two batches of 64, one per worker
    one = process_corpus(raw, tmp_path / "one", ProcessConfig(workers=1), 1337, ["SOD1"])
    two = process_corpus(raw, tmp_path / "two", ProcessConfig(workers=2), 1337, ["SOD1"])
    assert one["steps"] == two["steps"]
    for name in ("train.jsonl", "val.jsonl", "corpus.txt", "stats.json"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert set(two["step_seconds"]) >= {"read", "strip_markup", "near_dedup", "split_and_stats"}
