"""Text normalisation shared by the fact scorer: one canonical spelling for what can be written many ways.

Order matters: contractions and number words first (``two to three`` -> ``2 to 3``), then units and
ranges (``100-milligram`` -> ``100 mg``, ``2-3`` -> ``2 to 3``), then abbreviations and synonyms to a
single token (``TARDBP`` and ``TDP-43`` -> ``tdp43``), so a fact and a response normalised the same
way can be compared as plain strings or word sets.

Stemming is a small suffix stripper, not Porter/Snowball: nltk is not installed, and the scorer only
needs inflections of one word to collide (``inhibits``/``inhibition``/``inhibit``); it never shows stems.
"""

from __future__ import annotations

import re
import unicodedata

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*UNITS, *TENS, *SCALES], key=len, reverse=True))
_NUMBER_PHRASE = re.compile(rf"\b(?:{_NUMBER_WORD})(?:[\s-]+(?:{_NUMBER_WORD}))*\b")

# variant -> canonical token. Clinical abbreviations and the synonyms named in the issue; gene/protein
# name pairs a question may ask about ("what does OPTN encode?") are deliberately absent.
SYNONYMS: dict[str, tuple[str, ...]] = {
    "als": ("amyotrophic lateral sclerosis",),
    "tdp43": ("tdp-43", "tdp 43", "tardbp", "tar dna-binding protein 43", "tar dna binding protein 43"),
    "sod1": ("sod1", "superoxide dismutase 1", "superoxide dismutase-1"),
    "alsfrsr": (
        "alsfrs-r", "alsfrs r", "revised als functional rating scale", "als functional rating scale-revised",
        "als functional rating scale revised", "als functional rating scale",
    ),
    "ftd": ("frontotemporal dementia",),
    "aso": ("antisense oligonucleotide", "antisense oligonucleotides", "antisense drug", "antisense drugs"),
    "nfl": ("neurofilament light chain", "neurofilament light", "nf-l", "nfl"),
    "niv": ("non-invasive ventilation", "noninvasive ventilation", "non invasive ventilation"),
    "peg": ("percutaneous endoscopic gastrostomy",),
    "emg": ("electromyography", "electromyogram", "electromyographic"),
    "csf": ("cerebrospinal fluid",),
    "fda": ("food and drug administration",),
    "umn": ("upper motor neurons", "upper motor neuron", "upper motor neurone"),
    "lmn": ("lower motor neurons", "lower motor neuron", "lower motor neurone"),
    "pls": ("primary lateral sclerosis",),
    "pma": ("progressive muscular atrophy",),
    "fus": ("fused in sarcoma",),
    "dysphagia": ("difficulty swallowing", "swallowing difficulty", "trouble swallowing", "swallowing problems"),
    "dysarthria": ("slurred speech", "difficulty speaking", "speech difficulty"),
    "sialorrhea": ("drooling", "excess saliva", "sialorrhoea"),
    "atrophy": ("wasting", "waste away", "wastes away", "wasting away"),
    "fasciculations": ("muscle twitching", "twitching"),
}
_VARIANTS = sorted(((v, canon) for canon, vs in SYNONYMS.items() for v in vs), key=lambda p: -len(p[0]))
_SYNONYM_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(v) for v, _ in _VARIANTS) + r")(?![\w-])"
)
_CANONICAL = dict(_VARIANTS)

# Stems meaning the same thing in a key fact ("inhibits CYP2D6" / "blocks CYP2D6").
STEM_SYNONYMS = {
    "block": "inhibit", "reduc": "inhibit", "decreas": "inhibit", "suppress": "inhibit",
    "withdrew": "withdraw", "withdrawn": "withdraw", "withdrawal": "withdraw",
    "halt": "stop", "slowing": "slow", "common": "shar", "shared": "shar",
}

# Negate the words just after them ("does not inhibit", "no effect on survival")...
NEGATORS = frozenset({"not", "no", "never", "nor"})
# ...or the whole clause ("it is a myth that", "none of the drugs slow progression").
CLAUSE_NEGATORS = frozenset({"myth", "none", "neither", "nothing", "nobody", "untrue"})
NEGATION_CUES = NEGATORS | CLAUSE_NEGATORS

STOPWORDS = frozenset(
    ["a", "an", "the", "of", "in", "on", "at", "to", "for", "from", "by", "with", "and", "or", "as", "is", "are", "was", "were", "be", "been", "being", "it", "its", "this", "that", "these", "those", "which", "who", "whom", "whose", "what", "when", "where", "why", "how", "do", "does", "did", "has", "have", "had", "can", "could", "may", "might", "will", "would", "should", "shall", "than", "then", "there", "their", "they", "them", "he", "she", "his", "her", "we", "our", "you", "your", "i", "also", "about", "into", "over", "under", "such", "so", "very", "more", "most", "some", "any", "each", "both", "all", "only", "just", "per"]
)

_SUFFIXES = (
    "ically", "ations", "ation", "icity", "ities", "ively", "ingly", "ments", "ment", "ness", "ings", "ions",
    "ally", "ical", "edly", "ers", "ors", "ing", "ity", "ive", "ion", "ial", "ies", "ed", "es", "er", "or", "ly",
    "al", "ic", "s", "e", "y",
)


def _strip(word: str) -> str:
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word[-len(suffix) - 1].isdigit():
            return word[: -len(suffix)]
    return word


def stem(word: str) -> str:
    """Strip up to two suffixes (``radicals`` -> ``radical`` -> ``rad``), keeping at least three letters."""
    return _strip(_strip(word))


def _number_value(phrase: str) -> int:
    total, current = 0, 0
    for word in re.split(r"[\s-]+", phrase):
        if word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word == "hundred":
            current = max(current, 1) * 100
        else:
            total += max(current, 1) * SCALES[word]
            current = 0
    return total + current


def normalize(text: str) -> str:
    """Lower-case canonical text; see the module docstring for the order of the steps."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", " - ").replace("\u2212", "-")
    text = re.sub(r"\bcan't\b|\bcannot\b", "can not", text)
    text = re.sub(r"\bwon't\b", "will not", text)
    text = re.sub(r"n't\b", " not", text)
    text = _NUMBER_PHRASE.sub(lambda m: str(_number_value(m.group(0))), text)
    text = re.sub(r"(\d)\s*(?:per\s?cent|percent)\b", r"\1 %", text)
    text = re.sub(r"(\d)\s*%", r"\1 %", text)
    text = re.sub(r"(\d)[\s-]*(?:milligrams?|mg)\b", r"\1 mg", text)
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:-|to)\s*(\d+(?:\.\d+)?)(?![\w.])", r"\1 to \2", text)
    for _ in range(2):  # twice: "revised amyotrophic lateral sclerosis functional rating scale"
        text = _SYNONYM_RE.sub(lambda m: _CANONICAL[m.group(1)], text)
    return re.sub(r"\s+", " ", text).strip()


_WORD = re.compile(r"[a-z0-9%]+(?:[-/'][a-z0-9]+)*")


def words(normalized: str) -> list[str]:
    return _WORD.findall(normalized)


def content_stems(normalized: str) -> list[str]:
    """Stems of the words that carry meaning (no stopwords, no negation cues)."""
    out = []
    for word in words(normalized):
        if word in STOPWORDS or word in NEGATION_CUES:
            continue
        s = stem(word)
        out.append(STEM_SYNONYMS.get(s, s))
    return out


def negated(normalized: str) -> bool:
    return any(w in NEGATION_CUES for w in words(normalized))


_CLAUSE_BREAK = re.compile(
    r"(?<=[.!?;:])\s+|;\s*|,?\s+(?:while|whereas|but|although|though|however)\s+|,\s+(?:and|whilst)\s+"
)


def clauses(normalized: str) -> list[str]:
    """Split at sentence ends and at the conjunctions that change the subject of what follows."""
    return [c.strip(" .,;:!?") for c in _CLAUSE_BREAK.split(normalized) if c and c.strip(" .,;:!?")]
