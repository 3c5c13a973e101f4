"""Per-document cleaning steps (docs/processing.md steps 1 and 4): markup, Unicode and whitespace,
abbreviations, and the minimum length."""

from __future__ import annotations

import html
import re
import unicodedata

import lxml.html
import trafilatura
from lxml import etree

from services.processor.pipeline import Document, RunLog, Step, words

TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:-]*(?:\s[^<>]*)?/?>|<!--.*?-->", re.DOTALL)
PAGE = re.compile(r"<(?:!DOCTYPE|html|body)\b", re.IGNORECASE)
ENTITY = re.compile(r"&(?:[A-Za-z]{2,8}|#\d{1,7}|#x[0-9A-Fa-f]{1,6});")
# Elements that are never prose: dropped with their content, not just untagged.
NON_CONTENT = ("script", "style", "nav", "header", "footer", "aside", "figure", "table", "noscript", "form")
BLOCKS = ("p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "section", "sec", "title",
          "blockquote", "tr", "article", "abstract")


class StripMarkup(Step):
    """Whole HTML pages go through trafilatura (main text, no boilerplate); fragments of markup in
    otherwise plain text (``<i>SOD1</i>``, JATS leftovers) through lxml; stray entities are decoded."""

    name = "strip_markup"

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        text = doc.text
        if PAGE.search(text):
            extracted = trafilatura.extract(text, include_comments=False, include_tables=False)
            if not extracted or not extracted.strip():
                log.exclude(self.name, "document", "no_main_text", doc.id, text)
                return None
            doc.text = extracted
            log.count(self.name, "documents_changed:html_page")
        elif TAG.search(text):
            doc.text = fragment_text(text)
            log.count(self.name, "documents_changed:markup")
        elif ENTITY.search(text):
            doc.text = html.unescape(text)
            log.count(self.name, "documents_changed:entities")
        return doc


def fragment_text(text: str) -> str:
    """Text of a markup fragment, with block elements on their own paragraphs."""
    try:
        root = lxml.html.fromstring(f"<div>{text}</div>")
    except (etree.ParserError, ValueError):
        return html.unescape(TAG.sub(" ", text))
    for el in list(root.iter(*NON_CONTENT)):
        el.drop_tree()
    for el in root.iter(*BLOCKS):
        el.tail = "\n\n" + (el.tail or "")
    return root.text_content()


SPACES = re.compile(r"[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+")
INVISIBLE = re.compile(r"[\u200b-\u200d\u2060\ufeff\u00ad]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
BLANK_LINES = re.compile(r"\n\s*\n+")


class Normalize(Step):
    """NFC, one kind of space, no invisible characters, paragraphs separated by exactly one blank line."""

    name = "normalize"

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        text = unicodedata.normalize("NFC", doc.text)
        if text != doc.text:
            log.count(self.name, "documents_changed:nfc")
        spaced = text.replace("\r\n", "\n").replace("\r", "\n")
        spaced = INVISIBLE.sub("", spaced)
        spaced = SPACES.sub(" ", spaced)
        spaced = "\n".join(line.strip() for line in spaced.split("\n"))
        spaced = BLANK_LINES.sub("\n\n", spaced).strip()
        if spaced != text:
            log.count(self.name, "documents_changed:whitespace")
        if not spaced:
            log.exclude(self.name, "document", "empty", doc.id, doc.text)
            return None
        doc.text = spaced
        doc.title = " ".join(unicodedata.normalize("NFC", doc.title).split())
        return doc


# Abbreviations that mean one thing in this corpus, with the long form a reader needs once.
ABBREVIATIONS = {
    "ALS": "amyotrophic lateral sclerosis",
    "MND": "motor neuron disease",
    "FTD": "frontotemporal dementia",
    "ALSFRS-R": "ALS Functional Rating Scale-Revised",
    "FVC": "forced vital capacity",
    "NIV": "non-invasive ventilation",
    "EMG": "electromyography",
    "PEG": "percutaneous endoscopic gastrostomy",
    "UMN": "upper motor neuron",
    "LMN": "lower motor neuron",
    "ASO": "antisense oligonucleotide",
    "CSF": "cerebrospinal fluid",
}
DOTTED_ALS = re.compile(r"\bA\.L\.S\.(?=\W|$)")
TITLE_CASE_ALS = re.compile(r"(?<=[a-z,;:(] )Amyotrophic Lateral Sclerosis\b")
# "ALS Association", "ALS Ice Bucket Challenge": part of a name, not a mention to expand.
NAME_FOLLOWS = re.compile(r" [A-Z][a-z]")
SENTENCE_START = re.compile(r"(?:^|[.!?:]\s+|\n)$")
SENTENCE_START_ALS = re.compile(r"(^|(?<=[.!?] )|(?<=\n))Amyotrophic Lateral Sclerosis\b")


def long_form_pattern(long: str) -> re.Pattern[str]:
    """Finds a long form already written, whatever its hyphens or case ("noninvasive ventilation",
    "Revised ALS Functional Rating Scale"); its first three words are enough to recognise it."""
    parts = long.replace("-", " ").split()[:3]
    return re.compile(r"[-\s–]?".join(map(re.escape, parts)), re.IGNORECASE)


class Abbreviations(Step):
    """§2.3 "normalize both 'amyotrophic lateral sclerosis' and 'ALS' to appear naturally":
    a document that only ever says ``ALS`` gets the long form at the first mention,
    ``amyotrophic lateral sclerosis (ALS)``, as an article would write it; later mentions stay
    short, and a mention that is part of a name ("ALS Association") is not the first mention.
    The same holds for the other unambiguous abbreviations above. ``A.L.S.`` becomes ``ALS`` and
    title-case ``Amyotrophic Lateral Sclerosis`` inside a sentence becomes lower case."""

    name = "abbreviations"

    def __init__(self) -> None:
        # One pass finds every abbreviation; the literal comes first so the regex engine can skip ahead.
        names = "|".join(re.escape(a) for a in sorted(ABBREVIATIONS, key=len, reverse=True))
        self.mentions = re.compile(rf"(?:{names})(?![\w-])")
        self.long_forms = {abbr: long_form_pattern(long) for abbr, long in ABBREVIATIONS.items()}

    def first_plain_mentions(self, text: str) -> dict[str, re.Match[str]]:
        """The first mention of each abbreviation that is a word of its own, not in parentheses
        (already defined) and not part of a name."""
        first: dict[str, re.Match[str]] = {}
        for m in self.mentions.finditer(text):
            before = text[m.start() - 1] if m.start() else " "
            if m.group(0) in first or before.isalnum() or before in "(-_" or NAME_FOLLOWS.match(text, m.end()):
                continue
            first[m.group(0)] = m
        return first

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        text, n = DOTTED_ALS.subn("ALS", doc.text)
        if n:
            log.count(self.name, "documents_changed:dotted_ALS")
        text, n1 = TITLE_CASE_ALS.subn("amyotrophic lateral sclerosis", text)
        text, n2 = SENTENCE_START_ALS.subn(r"\1Amyotrophic lateral sclerosis", text)
        if n1 + n2:
            log.count(self.name, "documents_changed:title_case")
        first = self.first_plain_mentions(text)
        # Expand from the end so earlier match offsets stay valid.
        for abbr, match in sorted(first.items(), key=lambda kv: kv[1].start(), reverse=True):
            if self.long_forms[abbr].search(text):
                continue
            expansion = ABBREVIATIONS[abbr]
            if SENTENCE_START.search(text[:match.start()]):
                expansion = expansion[0].upper() + expansion[1:]
            text = f"{text[:match.start()]}{expansion} ({abbr}){text[match.end():]}"
            log.count(self.name, f"documents_changed:expanded_{abbr}")
        doc.text = text
        return doc


class MinLength(Step):
    """Drop documents under ``min_tokens`` words (§2.3 step 4); runs last, after dedup shortened them."""

    name = "min_length"

    def __init__(self, min_tokens: int):
        self.min_tokens = min_tokens

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        n = len(words(doc.text))
        if n < self.min_tokens:
            log.exclude(self.name, "document", f"under_{self.min_tokens}_words", doc.id, doc.text, words=n)
            return None
        return doc
