"""Volatile-content filter (docs/processing.md step 3): sentences that will be wrong next year —
"currently", "as of <date>", opening hours, contact details, prices, "last updated" — are removed
and logged with the pattern that matched, so a model is not trained to recite them as facts."""

from __future__ import annotations

import re

from services.processor.pipeline import Document, RunLog, Step

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
    name = "volatile"

    def __init__(self, patterns: dict[str, str]):
        self.patterns = {name: re.compile(p, re.IGNORECASE) for name, p in patterns.items()}

    def apply(self, doc: Document, log: RunLog) -> Document | None:
        # Only the patterns found somewhere in the document are tried on its sentences;
        # most documents have none and are not split at all.
        present = [(name, p) for name, p in self.patterns.items() if p.search(doc.text)]
        if not present:
            return doc
        paragraphs = []
        removed = 0
        for paragraph in doc.text.split("\n\n"):
            lines = []
            for line in paragraph.split("\n"):
                kept = []
                for sentence in sentences(line):
                    pattern = next((name for name, p in present if p.search(sentence)), None)
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
