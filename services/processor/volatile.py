"""Volatile-content filter (docs/processing.md step 3): sentences that will be wrong next year —
"currently", "as of <date>", opening hours, contact details, prices, "last updated" — are removed
and logged with the pattern that matched, so a model is not trained to recite them as facts."""

from __future__ import annotations

import re

import re2

from services.processor.pipeline import Document, RunLog, Step
from services.processor.settings import VOLATILE_OPTIONS

# A boundary is sentence-ending punctuation, then space, then something that can start a sentence.
BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]?\s+(?=[\"'(\[]?[A-Z0-9])")
# Words whose trailing period does not end a sentence.
NO_BREAK = re.compile(r"(?:\b(?:e\.g|i\.e|et al|Dr|Mr|Mrs|Ms|Prof|vs|approx|Fig|Figs|No|St|Inc|Ltd|ca|cf)\.|"
                      r"\b[A-Z]\.)$")


def sentences(line: str) -> list[str]:
    """Split one line into sentences, not after "e.g.", "et al." or an initial."""
    out: list[str] = []
    start = 0
    for m in BOUNDARY.finditer(line):
        piece = line[start:m.start()]
        if NO_BREAK.search(piece):
            continue
        out.append(line[start:m.end()].strip())
        start = m.end()
    out.append(line[start:].strip())
    return [s for s in out if s]


class VolatileFilter(Step):
    """RE2, not ``re``: one pass of an RE2 set tells which patterns occur in a document (~100x faster
    than nine case-insensitive ``re`` scans, the costliest step at 1 GB: docs/benchmarks.md), and its
    linear time means no pattern a user adds can backtrack for minutes on one page."""

    name = "volatile"

    def __init__(self, patterns: dict[str, str]):
        self.patterns = patterns
        self.names = list(patterns)
        self.matcher = re2.Set.SearchSet(VOLATILE_OPTIONS)
        for pattern in patterns.values():
            self.matcher.Add(pattern)
        self.matcher.Compile()

    def __reduce__(self):  # the compiled set does not pickle; each worker compiles its own
        return type(self), (self.patterns,)

    def first_match(self, text: str) -> str | None:
        """The name of the first pattern (in settings order) found in ``text``."""
        found = self.matcher.Match(text)
        return self.names[min(found)] if found else None

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        # Most documents hold no pattern and are not split into sentences at all.
        if self.first_match(doc.text) is None:
            return doc
        paragraphs = []
        removed = 0
        for paragraph in doc.text.split("\n\n"):
            lines = []
            for line in paragraph.split("\n"):
                kept = []
                for sentence in sentences(line):
                    pattern = self.first_match(sentence)
                    if pattern:
                        log.exclude(self.name, "sentence", pattern, doc.id, sentence)
                        removed += 1
                    else:
                        kept.append(sentence)
                if kept:
                    lines.append(" ".join(kept))
            if lines:
                paragraphs.append("\n".join(lines))
        if not removed:
            return doc
        if not paragraphs:
            log.exclude(self.name, "document", "all_volatile", doc.id, doc.text)
            return None
        log.count(self.name, "documents_changed:sentences_removed")
        doc.text = "\n\n".join(paragraphs)
        return doc
