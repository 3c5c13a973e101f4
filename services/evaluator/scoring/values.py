"""Categorical values a key fact can state, by type (issue 24): an answer that gives another value of
the same type about the same subject contradicts the fact ("intravenous" for "intrathecal", "monoclonal
antibody" for "antisense oligonucleotide", "X-linked" for "autosomal recessive").

Each type is a small closed class of mutually exclusive values, written as the scorer's normalised
text spells them (``normalize.py`` has already turned "antisense oligonucleotide" into ``aso`` and
"intrathecally" into ``intrathecal``). Numbers (years, dates, doses, durations, shares, counts, trial
phases) are typed in ``facts.py``; drugs, genes and proteins are the entity kinds of ``entities.txt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# type -> value -> the phrases that state it. A phrase belongs to one value only.
CATEGORIES: dict[str, dict[str, tuple[str, ...]]] = {
    "route": {
        "intrathecal": ("intrathecal", "into the spinal canal", "spinal injection"),
        "intravenous": ("intravenous", "intravenously", "iv", "infusion", "infusions", "infused", "into a vein",
                        "into the vein", "into the bloodstream"),
        "oral": ("oral", "orally", "by mouth", "tablet", "tablets", "pill", "pills", "capsule", "capsules",
                 "swallowed"),
        "subcutaneous": ("subcutaneous", "subcutaneously", "under the skin"),
        "intramuscular": ("intramuscular", "intramuscularly", "into the muscle"),
        "inhaled": ("inhaled", "inhalation", "nebulised", "nebulized"),
        # "PEG" alone is the procedure; a drug given through it names the tube or the way.
        "feeding tube": ("feeding tube", "feeding tubes", "peg tube", "gastrostomy tube", "nasogastric tube",
                         "g-tube", "via peg", "via a peg", "through a peg", "through the peg", "through peg"),
    },
    "modality": {
        "aso": ("aso", "antisense"),
        "sirna": ("sirna", "small interfering rna", "rna interference", "rnai"),
        "antibody": ("monoclonal antibody", "monoclonal antibodies", "antibody"),
        "small molecule": ("small molecule", "small-molecule"),
        "gene therapy": ("gene therapy", "viral vector", "aav"),
        "cell therapy": ("stem cell", "stem cells", "cell therapy", "stem-cell"),
        "vaccine": ("vaccine",),
    },
    # What a drug does to its target: one drug has one of these in a key fact ("free radical scavenger").
    "mechanism": {
        "free radical scavenger": ("free radical scavenger", "free-radical scavenger", "antioxidant"),
        "glutamate antagonist": ("glutamate antagonist", "glutamate receptor antagonist", "nmda antagonist",
                                 "nmda receptor antagonist", "ampa receptor antagonist", "ampa antagonist"),
        "kinase inhibitor": ("kinase inhibitor", "tyrosine kinase inhibitor", "tki"),
        "anticholinergic": ("anticholinergic", "antimuscarinic", "muscarinic antagonist"),
        "cholinergic": ("cholinergic", "cholinesterase inhibitor", "acetylcholinesterase inhibitor",
                        "cholinomimetic"),
        "calcium channel blocker": ("calcium channel blocker",),
        "proteasome inhibitor": ("proteasome inhibitor",),
    },
    # The chemical family of a small-molecule drug.
    "chemical class": {
        "benzothiazole": ("benzothiazole",),
        "benzodiazepine": ("benzodiazepine", "benzodiazepines"),
        "pyrazolone": ("pyrazolone",),
        "phenothiazine": ("phenothiazine",),
        "barbiturate": ("barbiturate",),
        "opioid": ("opioid",),
        "corticosteroid": ("corticosteroid", "steroid"),
        "statin": ("statin",),
        "cephalosporin": ("cephalosporin", "beta-lactam antibiotic", "beta-lactam"),
        "bile acid": ("bile acid",),
    },
    "frequency": {
        "once daily": ("once daily",),
        "twice daily": ("twice daily",),
        "three times daily": ("three times daily", "3 times daily", "thrice daily", "three times a day",
                              "3 times a day", "tid"),
        "weekly": ("weekly", "once weekly", "every 1 week"),
        "monthly": ("monthly", "every 1 month"),
    },
    # A direction of change is a value only when it is the whole fact ("reduced", "declines"); said of an
    # object ("slows decline") it is a claim about that object, judged by the opposites of normalize.py.
    "direction": {
        "up": ("increase", "increases", "increased", "increasing", "rise", "rises", "rose", "risen", "rising",
               "higher", "elevated", "raised", "climbs", "climbed"),
        "down": ("decrease", "decreases", "decreased", "decreasing", "decline", "declines", "declined",
                 "declining", "fall", "falls", "fell", "falling", "drop", "drops", "dropped", "reduced",
                 "reduces", "reduce", "lower", "lowered"),
    },
    # Whether a drug is approved ("investigational" is normalised to "unapproved").
    "approval status": {
        "approved": ("approved", "fda-approved", "fda approved", "licensed"),
        "unapproved": ("unapproved", "not approved", "not yet approved", "not fda approved", "experimental"),
    },
    # The regulatory route of an approval (FDA and EMA).
    "approval pathway": {
        "accelerated": ("accelerated approval",),
        "full": ("full approval", "traditional approval", "regular approval", "standard approval",
                 "standard marketing authorisation", "standard marketing authorization", "full marketing authorisation",
                 "full marketing authorization"),
        "conditional": ("conditional approval", "conditional marketing authorisation",
                        "conditional marketing authorization"),
        "exceptional circumstances": ("exceptional circumstances",),
    },
    "inheritance": {
        "autosomal dominant": ("autosomal dominant", "dominantly inherited", "dominant inheritance",
                               "dominant form", "dominant pattern", "dominant manner", "dominant trait"),
        "autosomal recessive": ("autosomal recessive", "recessively inherited", "recessive inheritance", "recessive",
                                "recessively"),
        "x-linked": ("x-linked dominant", "x-linked recessive", "x-linked"),
        "mitochondrial": ("mitochondrial inheritance", "maternally inherited"),
    },
}
# A value that also states one of another type: a kinase inhibitor or a benzothiazole is a small molecule,
# so "masitinib is a monoclonal antibody" gives it another modality.
IMPLIED = {value: ("modality", "small molecule")
           for value in (*CATEGORIES["chemical class"], "kinase inhibitor", "free radical scavenger")}
# Values of one type that can both hold: an oral suspension may be given through a feeding tube.
COMPATIBLE = {"oral": frozenset({"feeding tube"}), "feeding tube": frozenset({"oral"})}
_PHRASES = sorted(((p, kind, value) for kind, values in CATEGORIES.items() for value, ps in values.items()
                   for p in ps), key=lambda t: -len(t[0]))
_LOOKUP = {p: (kind, value) for p, kind, value in _PHRASES}
_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(p) for p, _, _ in _PHRASES) + r")(?![\w-])")


@dataclass(frozen=True)
class Value:
    kind: str
    value: str
    start: int
    end: int


@lru_cache(maxsize=65536)
def values(normalized: str) -> tuple[Value, ...]:
    """The categorical values a normalised text states, in order (the longest phrase wins)."""
    out = []
    for m in _RE.finditer(normalized):
        kind, value = _LOOKUP[m.group(1)]
        out.append(Value(kind, value, m.start(), m.end()))
        if value in IMPLIED:
            out.append(Value(*IMPLIED[value], m.start(), m.end()))
    return tuple(out)


def fact_values(normalized: str) -> tuple[Value, ...]:
    """A key fact's values: a direction or an approval status only when it is the whole fact ("several
    investigational treatments" is about a trial, not a drug's status)."""
    found = values(normalized)
    whole = {v.kind for v in found if v.start == 0 and v.end == len(normalized)}
    return tuple(v for v in found if v.kind not in ("direction", "approval status") or v.kind in whole)
