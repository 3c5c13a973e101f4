"""How clean the corpus is, measured after cleaning (issue 15): residual patterns per source and
overall, as hits per 10,000 characters with a 95 % interval, and five seeded random snippets per
source for a human eye.

Residual classes, each counted by pattern over the text the model will read:
- ``citation_residue``: separator runs, empty brackets and bracketed numbers that dropped
  citations leave, and citation numbers glued to a word as superscripts ("disease¹²").
- ``urls``: web addresses.
- ``non_prose_lines``: table rows (cells split by tabs or pipes, or a line mostly of digits) and
  bibliography entries.
- ``repeated_lines``: a line of at least ``REPEAT_MIN_WORDS`` words found in ``REPEAT_MIN_DOCS``
  or more documents of one source (boilerplate that paragraph dedup, which keeps the first copy,
  does not remove when the line sits inside a longer paragraph). Every copy counts, the first too.
- ``mojibake``: UTF-8 read as Latin-1 or Windows-1252 ("Ã©", "â€™"), and the replacement character.
- ``markup``: HTML tags, character entities and MediaWiki heading markers ("== History ==").
"""

from __future__ import annotations

import random
import re
from collections import Counter, defaultdict
from typing import Any

from scipy.stats import chi2

from services.processor.residue import is_reference_entry

PER = 10_000  # characters
REPEAT_MIN_WORDS = 8
REPEAT_MIN_DOCS = 3
SNIPPETS = 5
SNIPPET_CHARS = 300

CITATION_RESIDUE = re.compile(
    r"[,;][ \t]*[,;]"                                   # ",," and "; ;"
    r"|[\[(][\s,;–-]*[\])]"                             # "( )", "[ , ]"
    r"|(?<![\w\]])\[\d{1,3}(?:\s*[-–,]\s*\d{1,3})*\]"    # "[12]", "[3-5]"; not "F[1,12]"
    r"|[,;][ \t]*(?=[.!?](?:\s|$))"                      # "lipids,."
)
GLUED_SUPERSCRIPT = re.compile(r"(?<=[A-Za-z])[¹²³⁴⁵⁶⁷⁸⁹⁰]+(?:[,⁻–-][¹²³⁴⁵⁶⁷⁸⁹⁰]+)*(?=[\s.,;:]|$)")  # "disease¹²"
URL = re.compile(r"(?:https?://|www\d?\.)\S+", re.IGNORECASE)
MOJIBAKE = re.compile(r"Ã[\u0080-\u00bf]|â€[\u0080-\u00bf\u2018-\u203a™]?|Â[\u00a0-\u00bf]|\ufffd")
TABLE_CELLS = re.compile(r"\t|\s\|\s")
# str.translate deleting digits and the punctuation of numbers: C speed, no per-character loop.
NUMERIC = str.maketrans("", "", "0123456789.,%±() -")
REFERENCE_HINT = re.compile(r"et al|doi|PMID|Crossref|Scholar|PubMed|Medline|\d[;:] ?\d")
MARKUP = re.compile(r"</?[A-Za-z][A-Za-z0-9]*(?:\s[^<>]*)?/?>|&(?:[A-Za-z]{2,8}|#\d{1,7}|#x[0-9A-Fa-f]{1,6});|^=={1,5}[^=\n]+={2,6}$",
                    re.MULTILINE)
CLASSES = ("citation_residue", "urls", "non_prose_lines", "repeated_lines", "mojibake", "markup")


def non_prose(line: str) -> bool:
    """A table row or a bibliography entry, not a sentence. Cheap tests first: this runs on every line."""
    if ("\t" in line or " | " in line) and len(TABLE_CELLS.findall(line)) >= 2:
        return True
    if len(line) >= 20 and len(line) - len(line.translate(NUMERIC)) > 0.6 * len(line):
        return True
    return REFERENCE_HINT.search(line) is not None and is_reference_entry(line)


def poisson_interval(hits: int, chars: int) -> tuple[float, float]:
    """Exact (Garwood) 95 % interval of a rate per ``PER`` characters."""
    if chars == 0:
        return (0.0, 0.0)
    low = chi2.ppf(0.025, 2 * hits) / 2 if hits else 0.0
    high = chi2.ppf(0.975, 2 * hits + 2) / 2
    return (round(low * PER / chars, 3), round(high * PER / chars, 3))


class QualityReport:
    """Fed every kept document once (``add``); ``summary`` merges in the characters each residue
    rule removed, taken from the pipeline's counters."""

    def __init__(self, seed: int):
        self.seed = seed
        self.chars: Counter[str] = Counter()
        self.documents: Counter[str] = Counter()
        self.hits: dict[str, Counter[str]] = defaultdict(Counter)
        # Per source: hash of a long line -> number of documents it occurs in.
        self.lines: dict[str, Counter[int]] = defaultdict(Counter)
        self.samples: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.rngs: dict[str, random.Random] = {}

    def add(self, doc_id: str, source: str, text: str) -> None:
        self.chars[source] += len(text)
        self.documents[source] += 1
        hits = self.hits[source]
        hits["citation_residue"] += len(CITATION_RESIDUE.findall(text)) + len(GLUED_SUPERSCRIPT.findall(text))
        hits["urls"] += len(URL.findall(text))
        hits["mojibake"] += len(MOJIBAKE.findall(text))
        hits["markup"] += len(MARKUP.findall(text))
        seen: set[int] = set()
        for line in text.split("\n"):
            if not line:
                continue
            if non_prose(line):
                hits["non_prose_lines"] += 1
            if line.count(" ") >= REPEAT_MIN_WORDS - 1 and len(line.split()) >= REPEAT_MIN_WORDS:
                seen.add(hash(line))
        self.lines[source].update(seen)
        self.sample(doc_id, source, text)

    def sample(self, doc_id: str, source: str, text: str) -> None:
        """Reservoir sampling of ``SNIPPETS`` documents per source, seeded per source."""
        rng = self.rngs.setdefault(source, random.Random(f"{self.seed}:{source}"))
        chosen, n = self.samples[source], self.documents[source]
        if len(chosen) < SNIPPETS:
            chosen.append((doc_id, text))
        elif (j := rng.randrange(n)) < SNIPPETS:
            chosen[j] = (doc_id, text)

    def snippet(self, source: str, text: str) -> str:
        rng = random.Random(f"{self.seed}:{source}:{len(text)}")
        if len(text) <= SNIPPET_CHARS:
            return text
        start = rng.randrange(len(text) - SNIPPET_CHARS)
        start = text.find(" ", start) + 1 if text.find(" ", start) != -1 else start
        return text[start:start + SNIPPET_CHARS].strip() + " …"

    def summary(self, steps: dict[str, dict[str, int]]) -> dict[str, Any]:
        removed: dict[str, Counter[str]] = defaultdict(Counter)
        for key, n in steps.get("residue", {}).items():
            if key.startswith("chars_removed:"):
                _, source, rule = key.split(":", 2)
                removed[source][rule] += n
        sources = sorted(set(self.chars) | set(removed))
        by_source = {s: self.one(s, removed[s]) for s in sources}
        overall_hits = Counter()
        overall_removed: Counter[str] = Counter()
        for s in sources:
            overall_hits.update(by_source[s]["residual_hits"])
            overall_removed.update(removed[s])
        chars = sum(self.chars.values())
        return {
            "per_chars": PER,
            "by_source": by_source,
            "overall": self.rates(chars, sum(self.documents.values()), overall_hits, overall_removed),
        }

    def one(self, source: str, removed: Counter[str]) -> dict[str, Any]:
        hits = Counter(self.hits[source])
        hits["repeated_lines"] = sum(n for n in self.lines[source].values() if n >= REPEAT_MIN_DOCS)
        out = self.rates(self.chars[source], self.documents[source], hits, removed)
        out["snippets"] = [{"id": i, "text": self.snippet(source, t)} for i, t in self.samples[source]]
        return out

    @staticmethod
    def rates(chars: int, documents: int, hits: Counter[str], removed: Counter[str]) -> dict[str, Any]:
        total = sum(hits[c] for c in CLASSES)
        return {
            "documents": documents,
            "chars": chars,
            "chars_removed_by_rule": dict(sorted(removed.items())),
            "residual_hits": {c: hits[c] for c in CLASSES},
            "residual_hits_total": total,
            "residual_per_10k_chars": round(total * PER / chars, 3) if chars else 0.0,
            "residual_per_10k_chars_95ci": list(poisson_interval(total, chars)),
        }


def render_markdown(q: dict[str, Any]) -> list[str]:
    """The quality section of ``stats.md``."""
    rules = sorted({r for v in [*q["by_source"].values(), q["overall"]] for r in v["chars_removed_by_rule"]})
    rows = [*q["by_source"].items(), ("**overall**", q["overall"])]
    lines = [
        "## Corpus quality",
        "",
        "Characters removed by each residue rule (`residue` step):",
        "",
        "| source | " + " | ".join(rules) + " |" if rules else "No residue rule removed anything.",
    ]
    if rules:
        lines.append("|---|" + "---:|" * len(rules))
        lines += [f"| {s} | " + " | ".join(f"{v['chars_removed_by_rule'].get(r, 0):,}" for r in rules) + " |"
                  for s, v in rows]
    lines += [
        "",
        f"Residual patterns after cleaning, hits per {q['per_chars']:,} characters (95 % exact Poisson interval):",
        "",
        "| source | documents | characters | " + " | ".join(CLASSES) + " | total | per 10k chars |",
        "|---|---:|---:|" + "---:|" * (len(CLASSES) + 2),
    ]
    for s, v in rows:
        low, high = v["residual_per_10k_chars_95ci"]
        lines.append(f"| {s} | {v['documents']:,} | {v['chars']:,} | "
                     + " | ".join(f"{v['residual_hits'][c]:,}" for c in CLASSES)
                     + f" | {v['residual_hits_total']:,} | {v['residual_per_10k_chars']} [{low}, {high}] |")
    lines += ["", "Five random snippets per source (seeded):", ""]
    for s, v in q["by_source"].items():
        lines.append(f"**{s}**")
        lines.append("")
        lines += [f"- `{sn['id']}`: {sn['text'].replace(chr(10), ' ⏎ ')}" for sn in v["snippets"]]
        lines.append("")
    return lines
