"""Residue of parsing, removed by general rules (issue 15): what dropped citations, dropped figures,
links and back matter leave in plain text, whichever source it came from.

The JATS parser already removes citations and back-matter sections where the XML still says what
they are; web pages, Wikipedia extracts and any future source arrive as plain text, so the same
classes of debris are cleaned here too, by pattern, not per file. MediaWiki's plain-text extracts
mark sections with ``== Title ==`` lines; whoever wrote the raw document (the wikipedia spider, the
bundled sample, another crawler) the marks go here and the title stays as a heading paragraph, the
section structure JATS articles arrive with. Every rule counts the characters
it removes (per source), so ``stats.md`` shows what each rule cost the corpus. The patterns that
*measure* what is left after cleaning live in ``quality.py``.
"""

from __future__ import annotations

import re

from services.processor.pipeline import Document, RunLog, Step

_REF_LABEL = (r"(?:(?:Supplementary|Supplemental|Additional)\s+)?"
              r"(?:Figs?\.|Figures?|Tables?|Files?|Data|Materials?|Appendix|Eqs?\.|Equations?|Movies?|Videos?|Boxes|Box)")
_REF_ID = r"(?:S?\d+[A-Za-z]?(?:\s*[-–]\s*S?\d*[A-Za-z]?)?|[A-Z]\b)"
_REF = rf"{_REF_LABEL}\s*{_REF_ID}(?:\s*(?:[,;&]|and)\s*{_REF_ID})*"
_REFS = rf"(?:see\s+(?:also\s+)?)?{_REF}(?:\s*(?:[,;]|and)\s*(?:see\s+)?{_REF})*"

_FIGURE_TRIGGERS = tuple(f"({w}" for w in ("fig", "tab", "supp", "addi", "see", "app", "eq", "mov", "vid", "box",
                                             "file", "data", "mat"))
_SEPARATOR_TRIGGERS = tuple(f"{a}{gap}{b}" for a in ",;" for gap in ("", " ") for b in ",;.!?)]")

# Any debris any rule below could remove starts with one of these; a document without (most of them)
# is scanned once.
_MAYBE_DEBRIS = re.compile(r"[,;] ?[,;.!?)\]]|\((?:[\s,;–)-]|see|e\.g|i\.e|cf|and|also|reviewed|fig|tab|supp|addi|app|eq|"
                           r"mov|vid|box|file|data|mat)|\[[\s\d,;–\]-]|https?:|www", re.IGNORECASE)

# (name, triggers, pattern, replacement), applied in this order to the whole text. A rule runs only
# when one of its triggers (lower-case substrings, a C-speed test) is in the text: most documents
# have no debris, and scanning every document with every pattern would dominate the step's cost.
SUBSTITUTIONS: list[tuple[str, tuple[str, ...], re.Pattern[str], str]] = [
    # A link's address is not prose; "available at" and "see" before it go with it.
    ("urls", ("http", "www"),
     re.compile(r"\s*(?:\b(?:(?:freely\s+|publicly\s+)?available\s+(?:online\s+)?(?:at|from)|accessible\s+at|"
                r"accessed\s+at|viewed\s+at|see|at|from|via)\s+)?(?:https?://|www\d?\.)[^\s<>\]\)]*[^\s<>\]).,;:!?'\"]",
                re.IGNORECASE), ""),
    # "(Figure 1)", "(Figs. 2 and 3)", "(see Table S1)": the figure or table itself was dropped.
    ("figure_refs", _FIGURE_TRIGGERS, re.compile(rf"\s*\(\s*{_REFS}\s*\)"), ""),
    # "(Figure 2; p = 0.004)" keeps what follows the reference.
    ("figure_refs", _FIGURE_TRIGGERS, re.compile(rf"(?<=\()\s*{_REFS}\s*[;,]\s*"), ""),
    # "[12]", "[3-5, 9]": numbered citations that arrived as text; not "F[1,12]".
    ("bracket_citations", ("[",), re.compile(r"(?:\s+|(?<![\w\]]))\[\d{1,3}(?:\s*[-–,]\s*\d{1,3})*\]"), ""),
    # "( )", "[ , ]", "(see )", "(e.g., )": brackets whose citations were dropped.
    ("empty_brackets", ("( ", "()", "[ ", "[]", "(,", "(;", "[,", "[;", "(-", "[-", "(–", "[–", "(see", "(e.g", "(i.e",
                        "(cf", "(and", "(also", "(reviewed"),
     re.compile(r"\s*[\[(](?:\s|[,;–-]|\b(?:see|e\.g\.|i\.e\.|cf\.|and|also|reviewed\s+in)(?!\w))*[\])]",
                re.IGNORECASE), ""),
    # ",,", "; ;": the separators between dropped citations.
    ("separator_runs", _SEPARATOR_TRIGGERS, re.compile(r"([,;])(?:[ \t]*[,;])+"), r"\1"),
    # "lipids, ." and "(2011; )": a separator left with nothing after it.
    ("separator_runs", _SEPARATOR_TRIGGERS, re.compile(r"[ \t]*[,;]+[ \t]*(?=[)\]]|[.!?](?:\s|$))"), ""),
]

# "== Title ==" to "====== Title ======" on a line of its own (TextExtracts' exsectionformat=wiki).
WIKI_HEADING = re.compile(r"(={2,6})[ \t]*([^=\n]*[^=\s])[ \t]*\1[ \t]*")

# Back matter as plain text: a heading that is nothing but its name ("Acknowledgements",
# "2. Competing interests"), or a line opening with such a label and a colon ("Funding: ...",
# "Corresponding Author: ..."). Whole-title matches only, so "Funding for ALS research" or
# "Disclosure of the diagnosis" in a patient's narrative stay prose.
_BACK_MATTER_NAME = (
    r"(?:acknowledge?ments?|author(?:s'?|'s)?\s+contributions?|contributors|funding(?:\s+(?:information|sources?|statement))?|"
    r"sources?\s+of\s+funding|grant\s+support|financial\s+(?:support|disclosures?)|competing\s+interests?|"
    r"conflicts?\s+of\s+interests?(?:\s+statement)?|declaration\s+of\s+(?:competing\s+)?interests?|"
    r"(?:editors'?\s+)?disclosures?(?:\s+statement)?|disclaimer|data\s+(?:availability|sharing)(?:\s+statement)?|"
    r"availability\s+of\s+data(?:\s+and\s+materials?)?|(?:list\s+of\s+)?abbreviations|"
    r"supplementary\s+(?:materials?|information|data)|supporting\s+information|corresponding\s+author|"
    r"(?:current\s+)?author\s+addresses|reproducible\s+research\s+statement|references|bibliography|"
    r"see\s+also|external\s+links|further\s+reading)"
)
BACK_MATTER_HEADING = re.compile(rf"(?:\d+(?:\.\d+)*\.?\s+)?{_BACK_MATTER_NAME}:?", re.IGNORECASE)
BACK_MATTER_LABEL = re.compile(rf"{_BACK_MATTER_NAME}:\s+\S", re.IGNORECASE)
# Bibliography entries: two or more of these in one line.
REFERENCE_MARKS = [
    re.compile(r"\bet al\b\s*\.?"),
    re.compile(r"\b(?:19|20)\d{2}\s*[;:]\s*\d+"),
    re.compile(r"\bdoi:\s*10\.|\b10\.\d{4,}/"),
    re.compile(r"\[PMID:?\s*\d+\]|\bPMID:?\s*\d+"),
    re.compile(r"\b(?:Crossref|Google Scholar|PubMed|Medline)\b"),
    re.compile(r"\b\d+\s*\(\d+\)\s*:\s*\d+|\b\d+\s*:\s*\d+\s*[-–]\s*\d+"),
]


def back_matter_label(line: str) -> bool:
    return BACK_MATTER_HEADING.fullmatch(line) is not None or BACK_MATTER_LABEL.match(line) is not None


def is_reference_entry(line: str) -> bool:
    return sum(1 for p in REFERENCE_MARKS if p.search(line)) >= 2


def wiki_headings(text: str) -> tuple[str, int]:
    """``== Title ==`` lines as plain heading paragraphs, and the characters of marks removed. The
    sections are kept whatever their title ("Sources" of reactive oxygen species is prose); the
    back-matter rule then judges the plain headings (References, See also, External links)."""
    lines = text.split("\n")
    removed = 0
    for i, line in enumerate(lines):
        if line.startswith("==") and (heading := WIKI_HEADING.fullmatch(line)):
            title = heading.group(2).strip()
            removed += len(line) - len(title)
            lines[i] = f"\n{title}\n"
    if not removed:
        return text, 0
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n"), removed


class Residue(Step):
    """Cleans parsing debris by the rules above and counts, per source, the characters each removes
    (``chars_removed:<source>:<rule>``). Line rules: bibliography entries go; a back-matter heading
    or label line goes, and when one stands in the last ``TAIL_SHARE`` of a document everything
    after it goes too (acknowledgements, contributions and disclosures close a text)."""

    name = "residue"
    TAIL_SHARE = 0.4

    def count(self, log: RunLog, doc: Document, rule: str, removed: int) -> None:
        if removed > 0:
            log.count(self.name, f"chars_removed:{doc.source}:{rule}", removed)

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        text = doc.text
        if "==" in text:
            text, removed = wiki_headings(text)
            self.count(log, doc, "wiki_headings", removed)
        text = self.lines(doc, log, text)
        if not _MAYBE_DEBRIS.search(text):
            return self.done(doc, log, text)
        lower = text.lower()
        for rule, triggers, pattern, replacement in SUBSTITUTIONS:
            if not any(t in lower for t in triggers):
                continue
            before = len(text)
            text = pattern.sub(replacement, text)
            if len(text) != before:  # what one rule removes can expose the next rule's debris
                lower = text.lower()
                self.count(log, doc, rule, before - len(text))
        return self.done(doc, log, text)

    def done(self, doc: Document, log: RunLog, text: str) -> Document | None:
        if text != doc.text:
            log.count(self.name, "documents_changed:residue")
        if not text.strip():
            log.exclude(self.name, "document", "only_residue", doc.id, doc.text)
            return None
        doc.text = text
        return doc

    def lines(self, doc: Document, log: RunLog, text: str) -> str:
        if not _might_have_line_residue(text):
            return text
        lines = text.split("\n")
        kept: list[str] = []
        position, tail_from = 0, len(text) * (1 - self.TAIL_SHARE)
        for i, line in enumerate(lines):
            if line and back_matter_label(line):
                if position >= tail_from:
                    rest = "\n".join(lines[i:])
                    self.count(log, doc, "back_matter", len(rest) + 1)
                    break
                self.count(log, doc, "back_matter", len(line) + 1)
            elif line and is_reference_entry(line):
                self.count(log, doc, "reference_entries", len(line) + 1)
            else:
                kept.append(line)
            position += len(line) + 1
        if len(kept) == len(lines):
            return text
        return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n")


_LINE_TRIGGERS = ("acknowledg", "contributor", "contribution", "funding", "grant", "financial", "competing",
                  "conflict", "declaration", "disclos", "disclaimer", "availab", "abbreviation", "supplementary",
                  "supporting", "corresponding", "addresses", "reproducible", "references", "bibliography",
                  "see also", "external links", "further reading", "et al", "doi", "pmid", "crossref", "pubmed", "medline")


def _might_have_line_residue(text: str) -> bool:
    """Most documents have no back matter or bibliography; substring tests spare them the line scan."""
    lower = text.lower()
    return any(t in lower for t in _LINE_TRIGGERS)
