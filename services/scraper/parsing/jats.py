"""JATS XML from PMC ``efetch`` (``<pmc-articleset>``): title, abstract, body prose and licence.

Figures, tables, reference lists, supplementary material and formulas are dropped: they are
captions, numbers and citations, not prose (§2.2.1). Inline citation markers go too, with the
separators between them and the brackets they leave behind, and so do back-matter sections
(acknowledgements, contributions, funding, competing interests, data availability,
abbreviations, supplements) wherever a publisher puts them: in ``<back>``, which is never read,
or as ordinary body sections, which are recognised by their type or title.

These are structural rules, decided where the structure is still visible; the processor's
``residue`` step cleans what any source (web pages included) leaves in plain text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from lxml import etree

from services.scraper.parsing import Malformed, squash, xml_root

XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
ALI = "http://www.niso.org/schemas/ali/1.0/"

MATHML = "{http://www.w3.org/1998/Math/MathML}math"
DROPPED = (
    "fig", "fig-group", "table-wrap", "table-wrap-group", "supplementary-material", "ref-list",
    "disp-formula", "inline-formula", "disp-formula-group", "tex-math", MATHML, "chem-struct-wrap",
    "media", "graphic", "inline-graphic", "ack", "fn-group", "glossary", "uri",
)
DROPPED_SEC_TYPES = {
    "supplementary-material", "display-objects", "COI-statement", "coi-statement", "data-availability",
    "funding", "ack", "acknowledgment", "acknowledgement", "author-contributions", "contributions",
    "abbreviations", "ethics-statement-disclosure",
}
# Body sections that are back matter whatever their sec-type says, recognised by their title
# (after numbering and a trailing colon are stripped; case-insensitive).
BACK_MATTER_TITLE = re.compile(
    r"(?:acknowledge?ments?|author(?:s'?|'s)?\s+contributions?|contributors?(?:hip)?|contributions|"
    r"funding(?:\s+(?:information|sources?|statement|and\s+.*))?|sources?\s+of\s+funding|financial\s+(?:support|disclosures?)|"
    r"grant\s+support|competing\s+interests?|conflicts?\s+of\s+interests?(?:\s+statement)?|"
    r"declaration\s+of\s+(?:competing\s+)?interests?|(?:financial\s+)?disclosures?(?:\s+statement)?|"
    r"duality\s+of\s+interest|data\s+(?:availability|sharing|access)(?:\s+statement)?|"
    r"availability\s+of\s+(?:data|supporting\s+data)(?:\s+and\s+materials?)?|list\s+of\s+abbreviations|abbreviations?(?:\s+used)?|"
    r"supplementary\s+(?:materials?|information|data|files?)|supporting\s+information|additional\s+files?|"
    r"pre-?publication\s+history|consent\s+for\s+publication|publisher'?s\s+note|footnotes?|notes|references?)",
    re.IGNORECASE,
)
# "2.", "2.1", "2.1.", "IV.", "B." (a bare capital letter or numeral without its stop is a word).
_SECTION_NUMBER = re.compile(r"^(?:\d+(?:\.\d+)*\.?|[IVXLC]+\.|[A-Z]\.)\s+(?=\S)")
NOT_THE_ABSTRACT = {"graphical", "teaser", "toc", "precis", "web-summary"}
ALLOWED_LICENCES = ("CC-BY", "CC-BY-NC", "CC0", "public-domain")

_EMPTY_BRACKETS = re.compile(
    r"\s*[\[(](?:\s|[,;–-]|\b(?:see|e\.g\.|i\.e\.|cf\.|and|also|reviewed\s+in|for\s+(?:a\s+)?review(?:\s+see)?)\b)*[\])]",
    re.IGNORECASE)
_SEPARATORS_ONLY = re.compile(r"^[\s,;–—-]*$")
_SEPARATOR_RUN = re.compile(r"([,;])(?:\s*[,;])+")
_SEPARATOR_BEFORE_STOP = re.compile(r"\s*[,;]+(?=[.!?:](?:\s|$))")
# "(2011; <URL>)", "(unpublished data; <citation>)": a separator whose neighbour inside the brackets
# was removed is left against the bracket.
_SEPARATOR_AT_BRACKET = re.compile(r"\s*[,;]+\s*(?=[)\]])|(?<=[(\[])\s*[,;]+\s*")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:])")
_CC_URL = re.compile(r"creativecommons\.org/licenses/([a-z-]+)/(\d\.\d)", re.IGNORECASE)


@dataclass(frozen=True)
class Licence:
    id: str
    url: str | None

    @property
    def allowed(self) -> bool:
        """CC-BY, CC-BY-NC, CC0 or public domain (§2.2.1); NoDerivatives and ShareAlike are not."""
        return self.id == "public-domain" or self.id.startswith("CC0") or re.fullmatch(
            r"CC-BY(-NC)?(-\d\.\d)?", self.id
        ) is not None


@dataclass(frozen=True)
class Article:
    pmcid: str
    title: str
    abstract: str
    body: str
    licence: Licence
    article_type: str | None
    journal: str | None
    year: str | None
    doi: str | None
    pmid: str | None


def classify_licence(url: str | None, text: str) -> Licence:
    """A licence id from the licence URL, else from the licence sentence."""
    if url:
        if m := _CC_URL.search(url):
            return Licence(f"CC-{m.group(1).upper()}-{m.group(2)}", url)
        if "publicdomain/zero" in url.lower():
            return Licence("CC0-1.0", url)
        if "publicdomain/mark" in url.lower():
            return Licence("public-domain", url)
    words = text.lower()
    if "public domain" in words or "not subject to copyright" in words:
        return Licence("public-domain", url)
    if "cc0" in words or "creative commons zero" in words:
        return Licence("CC0-1.0", url)
    if "creative commons attribution" in words or "cc by" in words or "cc-by" in words:
        parts = ["CC-BY"]
        if re.search(r"non-?commercial|\bnc\b", words):
            parts.append("NC")
        if re.search(r"share-?alike|\bsa\b", words):
            parts.append("SA")
        if re.search(r"no-?deriv|no derivative|\bnd\b", words):
            parts.append("ND")
        version = re.search(r"\b(\d\.\d)\b", words)
        return Licence("-".join(parts + ([version.group(1)] if version else [])), url)
    return Licence("unknown", url)


def _licence(meta: etree._Element) -> Licence:
    """From ``permissions/license``; older NLM 2.x articles state it only in a copyright statement,
    inside ``permissions`` or directly in ``article-meta``."""
    found = Licence("unknown", None)
    for lic in meta.iterfind("permissions/license"):
        url = lic.get(XLINK_HREF) or next((squash(r.text or "") for r in lic.iter(f"{{{ALI}}}license_ref")), None)
        found = classify_licence(url, squash("".join(lic.itertext())))
        if found.id != "unknown":
            return found
    for statement in [*meta.iterfind("permissions/copyright-statement"), *meta.iterfind("copyright-statement")]:
        found = classify_licence(None, squash("".join(statement.itertext())))
        if found.id != "unknown":
            return found
    return found


def section_title(title: str) -> str:
    """A heading as prose expects it: no numbering ("2.1 Methods"), no trailing colon
    ("Background:"), and a capital letter where a publisher sets every heading in lower case."""
    title = _SECTION_NUMBER.sub("", title.strip()).rstrip(":").strip()
    if title and title == title.lower():
        title = title[0].upper() + title[1:]
    return title


def is_back_matter(sec: etree._Element) -> bool:
    if sec.get("sec-type") in DROPPED_SEC_TYPES:
        return True
    title = sec.find("title")
    text = squash("".join(title.itertext())) if title is not None else ""
    return bool(text) and BACK_MATTER_TITLE.fullmatch(section_title(text)) is not None


def _is_citation(el: etree._Element | None) -> bool:
    return el is not None and el.tag == "xref" and el.get("ref-type") == "bibr"


def _drop(tree: etree._Element) -> None:
    """Remove non-prose elements, keeping the text that follows each one."""
    doomed = list(tree.iter(*DROPPED))
    citations = [e for e in tree.iter("xref") if e.get("ref-type") == "bibr"]
    # "[1], [2]-[4]": the separators between consecutive citations are part of the citation.
    for el in citations:
        if _is_citation(el.getnext()) and _SEPARATORS_ONLY.match(el.tail or ""):
            el.tail = None
    doomed += citations
    doomed += [e for e in tree.iter("sec") if is_back_matter(e)]
    # A link whose text is its address is not prose; a named link ("the WHO report") keeps its words.
    doomed += [e for e in tree.iter("ext-link") if re.match(r"\s*(?:https?://|www\.|doi:)", "".join(e.itertext()))]
    for el in doomed:
        if el.tag in ("disp-formula", "disp-formula-group") and (paragraph := _paragraph_of(el)) is not None:
            paragraph.set(LOST_EQUATION, "1")
        _remove(el)
    # Superscript citation groups are left holding only their commas and dashes; a genotype
    # ("Ripk2<sup>−/−</sup>", "<sup>+/+</sup>") has no letter either and stays.
    for sup in list(tree.iter("sup")):
        if _SEPARATORS_ONLY.match("".join(sup.itertext())):
            _remove(sup)


LOST_EQUATION = "als-lm-lost-equation"


def _paragraph_of(el: etree._Element) -> etree._Element | None:
    return next((a for a in el.iterancestors("p")), None)


def _introduces_lost_equation(p: etree._Element, text: str) -> bool:
    """"Thus in the haploid case:" once its display equation is gone is a sentence about nothing."""
    return p.get(LOST_EQUATION) is not None and text.endswith(":")


def _remove(el: etree._Element) -> None:
    """Detach ``el``; its tail text joins what precedes it, with a space so words stay apart."""
    parent = el.getparent()
    if parent is None:
        return
    if el.tail:
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + " " + el.tail
        else:
            parent.text = (parent.text or "") + " " + el.tail
    parent.remove(el)


def _inline(el: etree._Element) -> str:
    text = _EMPTY_BRACKETS.sub("", squash("".join(el.itertext())))
    text = _SEPARATOR_BEFORE_STOP.sub("", _SEPARATOR_AT_BRACKET.sub("", _SEPARATOR_RUN.sub(r"\1", text)))
    return _SPACE_BEFORE_PUNCT.sub(r"\1", text).strip()


def _blocks(container: etree._Element) -> list[str]:
    """Section titles and paragraphs in reading order, one block each."""
    blocks: list[str] = []
    for child in container:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag == "sec":
            title = child.find("title")
            if title is not None and (heading := section_title(_inline(title))):
                blocks.append(heading)
            blocks.extend(_blocks(child))
        elif tag == "list":
            items = [f"- {t}" for item in child.iterfind("list-item") if (t := _inline(item))]
            if items:
                blocks.append("\n".join(items))
        elif (tag in ("p", "disp-quote", "boxed-text", "statement", "def-list") and (text := _inline(child))
              and not _introduces_lost_equation(child, text)):
            blocks.append(text)
    return blocks


def _first(meta: etree._Element, path: str) -> str | None:
    el = meta.find(path)
    if el is None:
        return None
    return squash("".join(el.itertext())) or None


def _abstract(meta: etree._Element) -> etree._Element | None:
    candidates = [a for a in meta.iterfind("abstract") if a.get("abstract-type") not in NOT_THE_ABSTRACT]
    untyped = [a for a in candidates if a.get("abstract-type") is None]
    return (untyped or candidates or [None])[0]


def parse_article(article: etree._Element) -> Article:
    meta = article.find("front/article-meta")
    if meta is None:
        raise Malformed("an <article> without front/article-meta")
    ids = {e.get("pub-id-type"): squash(e.text or "") for e in meta.iterfind("article-id")}
    digits = re.sub(r"\D", "", ids.get("pmcid") or ids.get("pmc") or "")
    if not digits:
        raise Malformed("an <article> without a PMC id")
    _drop(article)
    abstract = _abstract(meta)
    body = article.find("body")
    year = meta.find("pub-date/year")
    return Article(
        pmcid=f"PMC{digits}",
        title=_first(meta, "title-group/article-title") or "",
        abstract="\n\n".join(_blocks(abstract)) if abstract is not None else "",
        body="\n\n".join(_blocks(body)) if body is not None else "",
        licence=_licence(meta),
        article_type=article.get("article-type"),
        journal=_first(article, "front/journal-meta/journal-title-group/journal-title")
        or _first(article, "front/journal-meta/journal-title"),  # NLM 2.x has no title group
        year=year.text.strip() if year is not None and year.text else None,
        doi=ids.get("doi"),
        pmid=ids.get("pmid"),
    )


@dataclass(frozen=True)
class BadArticle:
    """One ``<article>`` of a reply that cannot be read; the others of the batch still are."""

    pmcid: str | None
    reason: str


# Notices about another article, not prose of their own.
NOTICE_TYPES = {"correction", "retraction", "expression-of-concern", "removal", "addendum"}


def parse_articleset(body: bytes) -> list[Article | BadArticle]:
    """Every article of an efetch reply; one malformed article is reported, not fatal to the batch."""
    root = xml_root(body, "pmc-articleset")
    out: list[Article | BadArticle] = []
    for element in root.iterfind("article"):
        try:
            out.append(parse_article(element))
        except Malformed as err:
            ids = element.iterfind("front/article-meta/article-id")
            digits = next((re.sub(r"\D", "", e.text or "") for e in ids if e.get("pub-id-type") in ("pmc", "pmcid")), "")
            out.append(BadArticle(f"PMC{digits}" if digits else None, str(err)))
    return out


def article_documents(article: Article, accessed: date) -> list[dict]:
    """The abstract and the body as separate raw documents (§2.2.1: abstracts are their own examples)."""
    url = f"https://pmc.ncbi.nlm.nih.gov/articles/{article.pmcid}/"
    meta = {
        "category": "research",
        "pmcid": article.pmcid,
        "pmid": article.pmid,
        "doi": article.doi,
        "journal": article.journal,
        "year": article.year,
        "article_type": article.article_type,
        "license_url": article.licence.url,
    }
    return [
        {
            "id": f"pmc-{article.pmcid}-{part}",
            "source": "pmc",
            "url": url,
            "title": article.title,
            "text": text,
            "date_accessed": accessed.isoformat(),
            "license": article.licence.id,
            "metadata": {**meta, "part": part},
        }
        for part, text in (("abstract", article.abstract), ("body", article.body))
        if text
    ]
