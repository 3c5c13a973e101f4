"""The residue step's general rules and the corpus quality report: what each rule removes (and
leaves), that every removal is counted per source and rule, and that the report measures what is
left after cleaning, with seeded snippets."""

from __future__ import annotations

import json
import re

import pytest

from services.processor.clean import Normalize, StripMarkup
from services.processor.pipeline import Document, RunLog, chain
from services.processor.process import process_corpus
from services.processor.quality import QualityReport, poisson_interval
from services.processor.residue import Residue
from services.processor.settings import ProcessConfig
from services.processor.terms import load_terms
from tests.processor.raw import raw_line, sample_lines

PROSE = ("Motor neurons degenerate in the spinal cord and the cortex, and the disease progresses over years "
         "while patients keep their sensation. ")


def clean(text: str, source: str = "web") -> tuple[str | None, RunLog]:
    log = RunLog([])
    out = list(chain([Residue()], [Document(id="d", source=source, category="research", title="t", text=text)], log))
    return (out[0].text if out else None), log


@pytest.mark.parametrize(("before", "after"), [
    ("homologous to X,,, and Y.", "homologous to X, and Y."),
    ("from host lipids,,,. Therefore", "from host lipids. Therefore"),
    ("as reported ( ) and later [ , ] again.", "as reported and later again."),
    ("shown before (see ) in mice.", "shown before in mice."),
    ("grew (Figure 1). Then", "grew. Then"),
    ("grew (Figs. 2 and 3B; see Table S1). Then", "grew. Then"),
    ("higher (Figure 2; p = 0.004).", "higher (p = 0.004)."),
    ("as shown [12] and [3-5, 9].", "as shown and."),
    ("the F[1,12] = 8.4 test", "the F[1,12] = 8.4 test"),
    ("by the WHO (2011; http://www.who.int/tb/en/), which", "by the WHO (2011), which"),
    ("Code is on GitHub (https://github.com/x/y).", "Code is on GitHub."),
])
def test_residue_rules_clean_debris_and_leave_prose(before, after):
    text, _ = clean(before)
    assert text == after


def test_back_matter_lines_go_and_a_trailing_block_goes_whole():
    body = "\n\n".join([PROSE * 3, "Funding for ALS research has grown.", PROSE * 3])
    label = "Competing interests: none."
    tail = "Acknowledgements\n\nWe thank the nurses.\n\nDr. Smith: 12 Main Street."
    text, log = clean(f"{label}\n\n{body}\n\n{tail}")
    assert text == body  # a heading must be the whole line: "Funding for ALS research ..." stays
    removed = log.stats.as_dict()["residue"]
    assert removed["chars_removed:web:back_matter"] == len(label) + 1 + len(tail) + 1


def test_reference_entries_are_removed_and_counted_per_source():
    ref = "- 31. Fleming DM, Watson JM, et al. Study of influenza vaccination. Epidemiol Infect. 1993;111:591-5. [PMID: 7651002]"
    text, log = clean(f"{PROSE}\n{ref}\n{PROSE}", source="pmc")
    assert "Fleming" not in text and text.count("Motor neurons") == 2
    assert log.stats.as_dict()["residue"]["chars_removed:pmc:reference_entries"] == len(ref) + 1


def test_mediawiki_heading_marks_become_heading_paragraphs_and_are_counted():
    text, log = clean(f"{PROSE}\n== Sources ==\n{PROSE}\n\n=== In ALS ===\n{PROSE}", source="wikipedia")
    assert text == f"{PROSE}\n\nSources\n\n{PROSE}\n\nIn ALS\n\n{PROSE}"  # "Sources" here is prose: kept
    assert log.stats.as_dict()["residue"]["chars_removed:wikipedia:wiki_headings"] == 6 + 8
    assert clean("a == b == c, and x == y.")[0] == "a == b == c, and x == y."  # not on a line of its own


def test_mediawiki_link_sections_at_the_end_go_as_back_matter():
    links = "== See also ==\nMotor neuron disease\n\n== External links ==\nALS Association"
    text, log = clean(f"{PROSE * 4}\n\n== Causes ==\n{PROSE * 4}\n\n{links}", source="wikipedia")
    assert text == f"{PROSE * 4}\n\nCauses\n\n{PROSE * 4}"
    assert log.stats.as_dict()["residue"]["chars_removed:wikipedia:back_matter"] > len("Motor neuron disease")


def test_bundled_sample_keeps_no_mediawiki_heading_marks():
    """The sample's Wikipedia documents keep the extracts' ``== Heading ==`` lines, as a raw
    document from any MediaWiki crawl may; none may reach the corpus."""
    docs = [Document(id=d["id"], source=d["source"], category=d["metadata"]["category"], title=d["title"],
                     text=d["text"]) for d in map(json.loads, sample_lines())]
    marks = re.compile(r"^[ \t]*==.*==[ \t]*$", re.MULTILINE)
    assert sum(len(marks.findall(d.text)) for d in docs) >= 90
    out = list(chain([StripMarkup(), Normalize(), Residue()], docs, RunLog([])))
    assert len(out) == len(docs)
    left = [(d.id, m) for d in out for m in marks.findall(d.text)]
    assert not left, left[:5]
    report = QualityReport(seed=1)
    for d in out:
        report.add(d.id, d.source, d.text)
    assert report.summary({})["overall"]["residual_hits"]["markup"] == 0


def test_a_clean_document_is_untouched_and_not_counted():
    text, log = clean(PROSE * 5)
    assert text == (PROSE * 5)
    assert not any(k.startswith("chars_removed") for k in log.stats.as_dict()["residue"])


def test_quality_report_counts_residual_patterns_per_source():
    report = QualityReport(seed=7)
    boiler = "This page was reviewed by our medical board and is provided for information only."
    for i in range(4):
        report.add(f"w{i}", "web", f"Page {i}: {PROSE}\n{boiler}\nSee www.example.org for more.")
    report.add("p0", "pmc", "Results were similar,, as shown ( ) before.\nCol A\tCol B\tCol C\n12.1 | 13.4 | 15.0")
    report.add("p1", "pmc", "Ã© mojibake and <b>markup</b> and == Heading ==")
    q = report.summary({"residue": {"chars_removed:web:urls": 40, "chars_removed:pmc:figure_refs": 12}})
    web, pmc = q["by_source"]["web"]["residual_hits"], q["by_source"]["pmc"]["residual_hits"]
    assert web["urls"] == 4 and web["repeated_lines"] == 4 and web["citation_residue"] == 0
    assert pmc["citation_residue"] == 2 and pmc["non_prose_lines"] == 2 and pmc["mojibake"] == 1
    assert pmc["markup"] == 2
    assert q["overall"]["chars_removed_by_rule"] == {"figure_refs": 12, "urls": 40}
    assert q["overall"]["residual_hits_total"] == sum(web.values()) + sum(pmc.values())
    low, high = q["overall"]["residual_per_10k_chars_95ci"]
    assert low < q["overall"]["residual_per_10k_chars"] < high
    assert len(q["by_source"]["web"]["snippets"]) == 4


def test_snippets_are_five_per_source_and_seeded():
    def snippets(seed: int) -> list[str]:
        report = QualityReport(seed)
        for i in range(40):
            report.add(f"d{i}", "web", f"document {i} " + PROSE * 4)
        return [s["id"] for s in report.summary({})["by_source"]["web"]["snippets"]]

    assert len(snippets(1)) == 5 and snippets(1) == snippets(1) and snippets(1) != snippets(2)


def test_poisson_interval_is_exact_and_covers_zero():
    assert poisson_interval(0, 10_000) == (0.0, 3.689)
    low, high = poisson_interval(10, 100_000)
    assert low < 1.0 < high


def test_stats_carry_the_quality_report(tmp_path):
    raw = tmp_path / "raw.jsonl"
    texts = [f"Paper {i}. {PROSE * 12} Results were similar (Figure {i}), as before [4]." for i in range(12)]
    raw.write_bytes(b"\n".join(raw_line(f"doc-{i}", t) for i, t in enumerate(texts)) + b"\n")
    process_corpus([raw], tmp_path / "out", ProcessConfig(min_tokens=20), 1337, [t for _, t in load_terms()])
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    removed = stats["quality"]["by_source"]["test"]["chars_removed_by_rule"]
    assert removed["figure_refs"] == sum(len(f" (Figure {i})") for i in range(12))
    assert removed["bracket_citations"] == 12 * len(" [4]")
    assert stats["quality"]["overall"]["residual_hits_total"] == 0
    corpus = (tmp_path / "out" / "corpus.txt").read_text()
    assert "(Figure" not in corpus and "[4]" not in corpus
    md = (tmp_path / "out" / "stats.md").read_text()
    assert "## Corpus quality" in md and "chars_removed:" not in md
