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
from functools import lru_cache

UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_NUMBER_WORD = "|".join(sorted([*UNITS, *TENS, *SCALES], key=len, reverse=True))
# "one hundred and thirty-seven": "and" joins number words only after a scale word.
_NUMBER_PHRASE = re.compile(
    rf"\b(?:{_NUMBER_WORD})(?:(?:[\s-]+|(?<=hundred) and |(?<=thousand) and )(?:{_NUMBER_WORD}))*\b")

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
    # Lay and technical names of the same finding, organ or event, from the benchmark's vocabulary.
    "liver": ("hepatic",),
    "kidney": ("renal",),
    "respiratory": ("breathing", "respiration", "ventilatory"),
    "crying": ("weeping", "tearfulness"),
    "laughing": ("laughter",),
    "spasticity": ("muscle stiffness", "stiff muscles", "stiffness", "increased muscle tone", "increased tone"),
    "hyperreflexia": ("brisk reflexes", "exaggerated reflexes", "overactive reflexes", "increased reflexes",
                      "reflexes are brisk", "reflexes are exaggerated", "reflexes are brisk and exaggerated"),
    "weakness": ("loss of muscle strength", "loss of strength", "reduced strength", "muscles become weak"),
    "orthopnea": ("breathlessness when lying flat", "breathlessness lying flat", "shortness of breath when lying flat",
                  "shortness of breath lying flat", "breathless when lying flat", "orthopnoea"),
    "myelitis": ("inflammation of the spinal cord", "spinal cord inflammation"),
    "radiculitis": ("inflammation of the nerve roots", "inflammation of nerve roots", "nerve root inflammation"),
    "meningitis": ("inflammation of the meninges",),
    "papilledema": ("swelling of the optic disc", "optic disc swelling", "papilloedema"),
    "hypersensitivity": ("allergic reactions", "allergic reaction", "allergy"),
    "oculomotor": ("eye movements", "eye movement", "extraocular"),
    "sphincters": ("bladder and bowel control", "bladder and bowel", "sphincter"),
    "intrathecal": ("intrathecally",),
    "lumbar puncture": ("spinal tap",),
    "cough assist": ("mechanical insufflation-exsufflation", "insufflation-exsufflation", "cough-assist"),
    "physical therapy": ("physiotherapy",),
    "exclude": ("rule out", "rules out", "ruling out", "exclusion of"),
    "withdrew": ("took off the market", "taken off the market", "pulled from the market", "pulled off the market",
                 "removed from the market", "off the market"),
    "unapproved": ("investigational",),  # read by the negating-prefix rule: states "not approved"
    "discontinued": ("stopped developing", "stopped development", "halted development", "ended development"),
    "twice daily": ("twice a day", "twice per day", "2 times a day", "2 times daily", "every 12 hours", "bid"),
    "once daily": ("once a day", "once per day", "every 24 hours"),
    "familial": ("family history", "inherited"),
    "most common": ("most frequent", "commonest"),
    "no cure": ("incurable", "no curative treatment", "can not be cured", "not curable",
                "no way to cure"),
    "survival": ("life expectancy",),
    "not succeed": ("not work", "not worked", "not working", "no better than placebo"),
    "bias": ("skewing the results", "skew the results", "skewing results"),
    "anterior horn": ("anterior horn cells",),
    "mrna": ("messenger rna",),
    "modest": ("slight", "marginal", "small benefit", "benefit is small", "small effect", "effect is small"),
    "weight loss": ("losing weight", "lose weight", "loses weight", "getting thinner", "becoming thinner"),
    "involuntary": ("uncontrollable", "can not control", "cannot be controlled", "without wanting"),
    "longer survival": ("prolongs survival", "prolonged survival", "live longer", "lives longer", "living longer",
                        "lower risk of death", "reduced mortality", "lower mortality"),
    "the most common": ("the leading",),
    "reduced penetrance": ("incomplete penetrance",),
    "drug-free period": ("drug holiday", "treatment-free period", "treatment-free interval", "drug-free interval",
                         "off the drug", "break from treatment", "treatment break"),
    # Standard abbreviations of the field, and symbols for elements, written either way.
    "fvc": ("forced vital capacity",),
    "nmj": ("neuromuscular junction", "neuromuscular junctions", "nerve-muscle junction", "nerve muscle junction",
            "motor end plate", "motor endplate"),
    "tms": ("transcranial magnetic stimulation",),
    "ftld": ("frontotemporal lobar degeneration",),
    "ema": ("european medicines agency",),
    "ups": ("ubiquitin-proteasome system", "ubiquitin proteasome system"),
    "upr": ("unfolded protein response",),
    "ipsc": ("induced pluripotent stem cells", "induced pluripotent stem cell", "ipscs"),
    "dpr": ("dipeptide repeat proteins", "dipeptide repeat protein", "dipeptide repeats", "dprs"),
    "ran translation": ("repeat-associated non-aug translation", "repeat associated non-aug translation",
                        "repeat-associated non-atg translation"),
    "pba": ("pseudobulbar affect",),
    "rct": ("randomized controlled trial", "randomised controlled trial"),
    "bbb": ("blood-brain barrier", "blood brain barrier"),
    "calcium": ("ca2+", "ca++"),
    "sodium": ("na+",),
    "potassium": ("k+",),
    # Clinical and molecular terms in lay or alternative words.
    "c-terminal": ("carboxyl terminus", "carboxy terminus", "c-terminus", "c terminus", "carboxyl-terminal",
                   "carboxy-terminal"),
    "n-terminal": ("amino terminus", "n-terminus", "n terminus", "amino-terminal"),
    "babinski sign": ("extensor plantar response", "extensor plantar", "upgoing plantar", "upgoing toe",
                      "up-going toe"),
    "hexanucleotide": ("6 nucleotide", "6 base", "6-base-pair", "ggggcc"),
    "excitotoxicity": ("excitotoxic damage", "glutamate toxicity"),
    "free radical scavenger": ("scavenges free radicals", "scavenger of free radicals", "mops up free radicals",
                               "neutralizes free radicals", "neutralises free radicals"),
    "presymptomatic": ("before symptom onset", "before the onset of symptoms", "pre-symptomatic"),
    "contiguous": ("adjacent",),
    "loss-of-function": ("loss of function", "inactivating"),
    "transgenic mouse": ("transgenic mice", "genetically engineered mice", "genetically modified mice"),
    "haploinsufficiency": ("loss of 1 copy",),
    "primary endpoint": ("primary outcome measure", "primary outcome", "primary end point", "primary end-point"),
    "placebo group": ("placebo arm",),
    "treatment group": ("treatment arm", "active arm", "active group"),
}
# A specific that implies a summarising term ("serum" is blood, "arms and legs" are limbs): the term
# is added after the specific, which stays (a fact may name the specific itself).
IMPLIES: dict[str, tuple[str, ...]] = {
    "limbs": ("arms and legs", "arms", "legs", "hands and feet"),
    "blood": ("serum", "plasma"),
    "glia": ("astrocytes", "microglia", "oligodendrocytes", "glial"),
    "salivary glands": ("parotid", "submandibular", "sublingual"),
    "reactive oxygen species": ("superoxide", "hydrogen peroxide", "hydroxyl radical", "free radicals"),
    "hypersensitivity": ("anaphylaxis", "angioedema", "urticaria"),
    "lower motor neurons": ("anterior horn",),
    "sphincters": ("bladder", "bowel"),
    "free radical scavenger": ("antioxidant",),
    "bulbar": ("speech and swallowing", "swallowing and speech"),
    "reinnervation": ("collateral sprouting", "re-innervate", "reinnervate"),
    "intrathecal": ("injected into the cerebrospinal fluid", "injection into the cerebrospinal fluid",
                    "injected into the spinal fluid", "injected directly into the fluid around the spinal cord",
                    "injected into the fluid around the spinal cord"),
}
_VARIANTS = sorted(((v, canon) for canon, vs in SYNONYMS.items() for v in vs), key=lambda p: -len(p[0]))
_SYNONYM_RE = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(v) for v, _ in _VARIANTS) + r")(?![\w-])"
)
_CANONICAL = dict(_VARIANTS)
def _canonical(text: str) -> str:
    return _SYNONYM_RE.sub(lambda m: _CANONICAL[m.group(1)], text)


# Both sides in canonical spelling, as they are matched after the synonyms.
_IMPLIED = sorted(((_canonical(v), _canonical(term)) for term, vs in IMPLIES.items() for v in vs),
                  key=lambda p: -len(p[0]))
_IMPLIES_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(v) for v, _ in _IMPLIED) + r")(?![\w-])")
_IMPLIED_TERM = dict(_IMPLIED)

# Words meaning the same thing in a key fact ("inhibits CYP2D6" / "blocks CYP2D6"): one concept each,
# matched by stem. Direction words fall in classes (down, up, fast) so an opposite can be told from a synonym.
CONCEPT_WORDS: dict[str, tuple[str, ...]] = {
    "inhibit": ("inhibit", "block", "reduce", "decrease", "suppress", "lower", "diminish", "attenuate", "slow",
                "slowly", "slowing", "delay", "gradual", "gradually", "protracted", "fall", "fell", "fallen",
                "falling", "drop", "dropped", "dropping"),
    "increas": ("increase", "raise", "elevate", "enhance", "boost", "promote", "stimulate", "induce", "upregulate",
                "augment", "higher", "rise", "rises", "rose", "risen", "rising", "climb", "climbed"),
    "rapid": ("rapid", "rapidly", "fast", "faster", "quick", "quickly", "accelerate", "swift", "aggressive"),
    "progress": ("progression", "progress", "progressive", "deteriorate", "deterioration", "decline", "worsen",
                 "worsening"),
    "withdraw": ("withdraw", "withdrew", "withdrawn", "withdrawal"),
    "stop": ("stop", "halt"),
    "shar": ("common", "shared", "share"),
    "agonist": ("agonist", "activate", "activates", "activation"),
    "young": ("juvenile", "teenage", "teenager", "young"),
    "old": ("elderly", "late-onset", "old"),
    "dominant": ("dominant", "dominantly"),
    "recess": ("recessive", "recessively"),
    "autosom": ("autosomal",),
    "x-linked": ("x-linked",),
    "fail": ("fail", "failed", "failure", "unsuccessful"),
    "gain": ("gain", "gains", "gained", "gaining"),
    "loss": ("loss", "lose", "loses", "losing", "lost"),
    "long": ("long", "longer", "longest", "prolonged", "extended"),
    "short": ("short", "shorter", "shortest", "shortened"),
    "approv": ("approve", "approved", "approval", "approves"),
    "reject": ("reject", "rejected", "rejection", "rejects", "refused"),
}
# Whole words mapped before stemming, where a stem would collide ("effective" and "effect").
WORD_CONCEPTS = {
    w: "success" for w in ("success", "successful", "succeed", "succeeded", "succeeds", "effective",
                           "efficacy", "efficacious", "benefit", "benefits", "beneficial", "met", "meet", "meets")
} | {"worse": "worse", "better": "better", "improve": "better", "improves": "better", "improved": "better"}
# Concepts that state the opposite of each other ("increases" for "inhibits", "slow" for "rapid").
OPPOSITES = {
    "inhibit": frozenset({"increas", "rapid"}), "increas": frozenset({"inhibit"}), "rapid": frozenset({"inhibit"}),
    "fail": frozenset({"success"}), "success": frozenset({"fail"}), "better": frozenset({"worse"}),
    "worse": frozenset({"better"}), "young": frozenset({"old"}), "old": frozenset({"young"}),
    "dominant": frozenset({"recess"}), "recess": frozenset({"dominant"}),
    "autosom": frozenset({"x-linked"}), "x-linked": frozenset({"autosom"}),
    "gain": frozenset({"loss"}), "loss": frozenset({"gain"}), "long": frozenset({"short"}),
    "short": frozenset({"long"}), "approv": frozenset({"reject"}), "reject": frozenset({"approv"}),
}
# Of these, the pairs with no middle ground: "did not succeed" states "failed".
COMPLEMENTS = {"fail": "success", "success": "fail"}

# Negate the words just after them ("does not inhibit", "no effect on survival")...
NEGATORS = frozenset({"not", "no", "never", "nor", "without", "lacks", "lack", "lacking", "lacked", "absent"})
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


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """Strip up to two suffixes (``radicals`` -> ``radical`` -> ``rad``), keeping at least three letters."""
    return _strip(_strip(word))


STEM_SYNONYMS = {stem(w): c for c, ws in CONCEPT_WORDS.items() for w in ws}


def _number_value(phrase: str) -> int:
    parts = [w for w in re.split(r"[\s-]+", phrase) if w != "and"]
    # A year read in two halves: "nineteen thirty-nine" is 1939, "twenty twenty-three" 2023.
    if len(parts) in (2, 3) and not set(parts) & {"hundred", *SCALES} and parts[0] in {**UNITS, **TENS} \
            and 10 <= {**UNITS, **TENS}[parts[0]] <= 20 and parts[1] in TENS:
        return 100 * {**UNITS, **TENS}[parts[0]] + _number_value(" ".join(parts[1:]))
    total, current = 0, 0
    for word in parts:
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


_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}
# A roman numeral is read only after a noun that numbers things ("phase iii", "type ii"), never "I".
_ROMAN_RE = re.compile(r"\b(phase|type|class|grade|stage|group|level|part|category|criterion)\s+"
                       r"(viii|vii|iii|vi|iv|ix|ii|i|v|x)\b")
_TIME_UNITS = "hours?|days?|weeks?|fortnights?|months?|years?|decades?"


_PARTS = {"third": 3, "quarter": 4, "fifth": 5, "sixth": 6, "eighth": 8, "tenth": 10}
# A fraction of a whole, only before "of" ("a third of patients"; "a third drug" is an ordinal).
_PART = r"(a|one|\d+)[\s-](third|quarter|fifth|sixth|eighth|tenth)s?"
_FRACTION = re.compile(rf"\b{_PART}(?: (?:to|or) {_PART})? of\b")


def _fraction(m: re.Match) -> str:
    """"a quarter to a third of" -> "25 to 33"."""
    shares = []
    for count, part in ((m.group(1), m.group(2)), (m.group(3), m.group(4))):
        if part:
            shares.append(f"{round(100 * (1 if count in ('a', 'one') else int(count)) / _PARTS[part]):g}")
    return " to ".join(shares)


# A dose or visit once per unit of time is an interval ("one dose a month" is every 28 to 31 days).
_INTERVAL = re.compile(r"\b(?:once|1 dose|1 injection) (?:a|per|every) (week|month)\b|\bevery (week|month)\b")
# British spellings to American, so both inflect to one stem ("randomised", "neurone", "tumour", "oedema").
_SPELLING = [(re.compile(rf"\b{a}"), b) for a, b in (
    ("randomis", "randomiz"), ("authoris", "authoriz"), ("characteris", "characteriz"), ("recognis", "recogniz"),
    ("organis", "organiz"), ("stabilis", "stabiliz"), ("hospitalis", "hospitaliz"), ("nebulis", "nebuliz"),
    ("immobilis", "immobiliz"), ("neurone", "neuron"), ("tumour", "tumor"), ("behaviour", "behavior"),
    ("centre", "center"), ("metre", "meter"), ("litre", "liter"), ("fibre", "fiber"), ("haem", "hem"),
    ("anaem", "anem"), ("paediat", "pediat"), ("oesophag", "esophag"), ("oedema", "edema"), ("dyspnoea", "dyspnea"),
    ("apnoea", "apnea"), ("diarrhoea", "diarrhea"), ("neighbour", "neighbor"), ("labour", "labor"))]


def _ratio(m: re.Match) -> str:
    part, whole = float(m.group(1)), float(m.group(2))
    return f"{round(100 * part / whole, 1):g} %"


@lru_cache(maxsize=16384)  # questions and key facts recur for every response scored
def normalize(text: str) -> str:
    """Lower-case canonical text; see the module docstring for the order of the steps."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = text.replace("\u2019", "'").replace("\u2013", "-").replace("\u2014", " - ").replace("\u2212", "-")
    text = re.sub(r"\bcan't\b|\bcannot\b", "can not", text)
    text = re.sub(r"\bwon't\b", "will not", text)
    text = re.sub(r"n't\b", " not", text)
    text = _ROMAN_RE.sub(lambda m: f"{m.group(1)} {_ROMAN[m.group(2)]}", text)
    text = _NUMBER_PHRASE.sub(lambda m: str(_number_value(m.group(0))), text)
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", text)  # 1,000
    # "1 in 10", "9 out of 10" and "half of" are shares; "a year" is one year.
    text = re.sub(r"\b(\d+) (?:in|out of) (\d+)\b(?! (?:" + _TIME_UNITS + r"))",
                  lambda m: _ratio(m) if int(m.group(1)) < int(m.group(2)) else m.group(0), text)
    text = re.sub(r"\b(?:a |one )?half of\b", "50 % of", text)
    text = re.sub(r"\b(?:a|one|only 1) single\b", "1", text)  # "a single region" is one region
    text = _INTERVAL.sub(lambda m: f"every 1 {m.group(1) or m.group(2)}", text)  # "once a month": every month
    for pattern, spelling in _SPELLING:
        text = pattern.sub(spelling, text)
    text = _FRACTION.sub(lambda m: f"{_fraction(m)} % of", text)  # "about a quarter of cases": 25 %
    text = re.sub(r"\b(points?|mg|doses?|injections?|%)\s+(?:a|each|every)\s+(day|week|month|year)\b",
                  r"\1 per \2", text)
    text = re.sub(r"(?<!once )(?<!twice )(?<!times )\b(?:a|an)\s+(" + _TIME_UNITS + r")\b", r"1 \1", text)
    text = re.sub(r"\bbetween (\d+(?:\.\d+)?) and (\d+(?:\.\d+)?)\b", r"\1 to \2", text)
    text = re.sub(r"(\d)\s*(?:per\s?cent|percent)\b", r"\1 %", text)
    text = re.sub(r"(\d)\s*%", r"\1 %", text)
    text = re.sub(r"(\d)[\s-]*(?:milligrams?|mg)\b", r"\1 mg", text)
    text = re.sub(r"(\d)[\s-]*(?:grams?|g)\b", r"\1 g", text)
    text = re.sub(r"(\d)[\s-]*(?:micrograms?|mcg|\u03bcg)\b", r"\1 mcg", text)
    text = re.sub(r"(\d)[\s-]*fold\b", r"\1 fold", text)  # "6-fold risk" is a ratio, not 6 of anything
    text = re.sub(r"\bno\.\s*(?=\d)", "number ", text)  # "approval no. 2019" numbers a document; it negates nothing
    text = re.sub(r"(?<![\w.-])(\d+)-([a-z]{3,})\b", r"\1 \2", text)  # "an 8-digit number", "a 10-item scale"
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)\s*(?:-|to)\s*(\d+(?:\.\d+)?)(?![\w.])", r"\1 to \2", text)
    text = re.sub(r"\bfail(?:s|ed|ing)? to\b", "not", text)  # "failed to slow" denies "slow"
    text = re.sub(r"\bno longer\b", "not", text)
    # "was not found until 2011" says when it was found, it denies nothing.
    text = re.sub(r"\b(?:not|never) ([a-z]+(?: [a-z]+)?) until\b", r"\1 only in", text)
    for _ in range(2):  # twice: "revised amyotrophic lateral sclerosis functional rating scale"
        text = _canonical(text)
    text = _IMPLIES_RE.sub(lambda m: f"{m.group(1)} {_IMPLIED_TERM[m.group(1)]}", text)
    return re.sub(r"\s+", " ", text).strip()


_WORD = re.compile(r"[a-z0-9%]+(?:[-/'][a-z0-9]+)*")


def words(normalized: str) -> list[str]:
    return _WORD.findall(normalized)


@lru_cache(maxsize=65536)
def concept(word: str) -> str:
    """The word's stem, or the concept its stem or the whole word stands for (``reduces`` -> ``inhibit``)."""
    if word in WORD_CONCEPTS:
        return WORD_CONCEPTS[word]
    s = stem(word)
    return STEM_SYNONYMS.get(s, s)


def content_stems(normalized: str) -> list[str]:
    """Concepts of the words that carry meaning (no stopwords, no negation cues)."""
    return [concept(w) for w in words(normalized) if w not in STOPWORDS and w not in NEGATION_CUES]


def negated(normalized: str) -> bool:
    return any(w in NEGATION_CUES for w in words(normalized))


_CLAUSE_BREAK = re.compile(
    r"(?<=[.!?;:])\s+|;\s*|,?\s+(?:while|whereas|but|although|though|however)\s+|,\s+(?:and|whilst)\s+"
)


def clauses(normalized: str) -> list[str]:
    """Split at sentence ends and at the conjunctions that change the subject of what follows."""
    return [c.strip(" .,;:!?") for c in _CLAUSE_BREAK.split(normalized) if c and c.strip(" .,;:!?")]
