"""The curated medical terms (``medical_terms.txt``): counted in ``stats.md`` and used to validate
the tokenizer (docs/processing.md). One term a line; ``# group`` lines name the group of what follows."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from services.processor.pipeline import words
from shared.errors import InvalidInput

TERMS_FILE = Path(__file__).with_name("medical_terms.txt")


def load_terms(path: Path = TERMS_FILE) -> list[tuple[str, str]]:
    """(group, term) pairs in file order, without repeats."""
    group, out, seen = "", [], set()
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            group = line.lstrip("#").strip()
        elif line not in seen:
            seen.add(line)
            out.append((group, line))
    if not out:
        raise InvalidInput(f"{path} lists no terms")
    return out


class TermCounter:
    """Counts term mentions in a document's words (``pipeline.words``), longest term first where
    they overlap ("upper motor neuron" is not also "motor neuron"). All-lower-case terms match
    any case ("Riluzole"); terms with capitals (genes, acronyms, brands) match as written, so
    "FUS" is not "fus". A dictionary walk, not one regex: 200 alternatives made that the slowest
    part of processing."""

    def __init__(self, terms: list[str]):
        self.exact: dict[tuple[str, ...], str] = {}
        self.folded: dict[tuple[str, ...], str] = {}
        for term in terms:
            key = tuple(words(term))
            if term == term.lower():
                self.folded[key] = term
            else:
                self.exact[key] = term
        self.longest = max(len(k) for k in (*self.exact, *self.folded))
        self.starts = {k[0].lower() for k in (*self.exact, *self.folded)}
        self.counts: Counter[str] = Counter()

    def add(self, tokens: list[str]) -> None:
        lowered = [t.lower() for t in tokens]
        i, n = 0, len(tokens)
        while i < n:
            if lowered[i] in self.starts:
                for size in range(min(self.longest, n - i), 0, -1):
                    term = self.exact.get(tuple(tokens[i:i + size])) or self.folded.get(tuple(lowered[i:i + size]))
                    if term:
                        self.counts[term] += 1
                        i += size
                        break
                else:
                    i += 1
            else:
                i += 1
