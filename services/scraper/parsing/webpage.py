"""Curated web pages: main text by trafilatura, without navigation, footers or cookie banners."""

from __future__ import annotations

import hashlib
from datetime import date

import lxml.html
import trafilatura
from lxml import etree

from services.scraper.parsing import Malformed

# Markup that is never the page's prose, whatever the site, removed before extraction: MediaWiki's
# "[edit]" section links, reference lists (PMC's hold "[DOI] [PubMed] [Google Scholar]" after each
# entry), PMC's "Associated Data" box of supplementary files, and links whose whole text is the name
# of a bibliographic database (a journal's reference list that no class marks).
_NOT_PROSE_CLASSES = ("mw-editsection", "ref-list", "reflist", "references", "associated-data")
_DATABASE_LABELS = ("DOI", "PubMed", "PMC free article", "Google Scholar", "Crossref", "CrossRef", "Medline")
_NOT_PROSE = etree.XPath(
    "//*[@role='doc-bibliography' or "
    + " or ".join(f"contains(concat(' ', normalize-space(@class), ' '), ' {c} ')" for c in _NOT_PROSE_CLASSES)
    + "] | //a[" + " or ".join(f"normalize-space()='{label}'" for label in _DATABASE_LABELS) + "]"
)


def page_id(url: str) -> str:
    return "web-" + hashlib.sha256(url.encode()).hexdigest()[:16]


def main_text(body: bytes, encoding: str, url: str, min_chars: int) -> tuple[str, str]:
    """(title, main text) of an HTML page; short or undecodable pages are ``Malformed``."""
    try:
        html = body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise Malformed(f"bytes are not valid {encoding}, the encoding the page declares") from None
    doc = trafilatura.bare_extraction(
        _without_non_prose(html), url=url, include_comments=False, include_tables=False, favor_precision=True, with_metadata=True
    )
    text = (doc.text or "").strip() if doc else ""
    if len(text) < min_chars:
        raise Malformed(f"main text is {len(text)} characters (< {min_chars}): an error page or no article")
    return (doc.title or "").strip(), text


def _without_non_prose(html: str) -> str:
    try:
        tree = lxml.html.document_fromstring(html)
    except (etree.ParserError, ValueError):
        return html  # trafilatura reports what it cannot read
    for el in _NOT_PROSE(tree):
        el.drop_tree()
    return lxml.html.tostring(tree, encoding="unicode")


def page_document(source: dict, title: str, text: str, accessed: date) -> dict:
    """``source`` is the page's entry in sources.yaml."""
    return {
        "id": page_id(source["url"]),
        "source": "web",
        "url": source["url"],
        "title": source.get("title") or title,
        "text": text,
        "date_accessed": accessed.isoformat(),
        "license": source["license"],
        "metadata": {
            "category": source["category"],
            "publisher": source["publisher"],
            **({"justification": source["justification"]} if source.get("justification") else {}),
        },
    }
