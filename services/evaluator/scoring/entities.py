"""The curated entity list (``entities.txt``): drugs, genes, trials, criteria and ALS-like conditions.

The fact scorer uses it to find who a clause is about (wrong-subject detection); the fabrication
detector treats every name on it as known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from services.evaluator.scoring.normalize import normalize
from shared.errors import InvalidInput

ENTITIES_FILE = Path(__file__).resolve().parent / "entities.txt"
# Protein variants such as P525L, A4V, D90A: the subject of a question as much as a gene is.
_VARIANT = r"[a-z]\d{1,4}[a-z]"


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    entity: str  # canonical (normalised) name: brand names resolve to their single-agent drug
    kind: str


class Entities:
    def __init__(self, names: dict[str, tuple[str, str]], written: set[str] = frozenset()):
        """``names``: normalised surface form -> (canonical form, kind); ``written``: the names as listed."""
        self.names, self.written = names, set(written)
        alternation = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        # A hyphen may follow a name ("UBQLN2-linked ALS") but not precede it.
        self._re = re.compile(rf"(?<![\w-])({alternation}|{_VARIANT})(?!\w)")

    @classmethod
    def load(cls, path: Path = ENTITIES_FILE) -> Entities:
        names: dict[str, tuple[str, str]] = {}
        written: set[str] = set()
        kind = None
        for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                kind = line[1:-1]
                continue
            if kind is None:
                raise InvalidInput(f"{path}:{lineno}: entity {line!r} before any [section]")
            surface, _, canonical = (part.strip() for part in line.partition("="))
            names[normalize(surface)] = (normalize(canonical or surface), kind)
            written.add(surface.lower())
        return cls(names, written)

    def mentions(self, normalized: str) -> list[Mention]:
        out = []
        for m in self._re.finditer(normalized):
            canonical, kind = self.names.get(m.group(1), (m.group(1), "variant"))
            out.append(Mention(m.start(), m.end(), canonical, kind))
        return out

    def surface_forms(self) -> set[str]:
        """Every listed name, lower-cased as written ("tdp-43") and normalised ("tdp43")."""
        return self.written | set(self.names)


@cache
def default_entities() -> Entities:
    return Entities.load()
