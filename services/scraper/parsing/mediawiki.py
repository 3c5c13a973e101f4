"""MediaWiki action API replies (``prop=extracts&explaintext=1``, ``formatversion=2``).

Section headings arrive as ``== Title ==``; they become plain lines, and the sections that are
lists of links or citations (See also, References, ...) are dropped with their subsections.
A reply that holds back part of the
result says so in ``continue``; the caller asks again with those parameters added and merges the
pages of every reply (``merge_pages``). Both reply shapes are read: ``formatversion=2`` (pages as a list, flags as booleans) and the
default ``formatversion=1`` (pages as an object keyed by page id, flags as empty strings). An
extract in TextExtracts' HTML format (a wiki that ignores ``explaintext``) is reduced to text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from datetime import date

import lxml.html

from services.scraper.parsing import Malformed, json_body

DROPPED_SECTIONS = {
    "see also", "references", "external links", "further reading", "notes", "bibliography",
    "sources", "citations", "footnotes", "notes and references",
}
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$")
_HTML_TAG = re.compile(r"</?(?:p|b|i|ul|ol|li|h[1-6]|span|div|br|dl|dd|dt)\b[^>]*>", re.IGNORECASE)
_HTML_HEADINGS = {"h2", "h3", "h4", "h5", "h6"}


@dataclass(frozen=True)
class WikiPage:
    title: str
    pageid: int | None
    url: str | None
    revid: int | None
    extract: str | None
    missing: bool


def parse_query(body: bytes) -> list[WikiPage]:
    data = json_body(body)
    if not isinstance(data, dict):
        raise Malformed("MediaWiki reply is not a JSON object")
    if "error" in data:
        err = data["error"]
        raise Malformed(f"MediaWiki API error {err.get('code')}: {err.get('info')}")
    pages = data.get("query", {}).get("pages")
    if isinstance(pages, dict):  # formatversion=1: {"<pageid>": {...}}, "-1" for a missing title
        pages = list(pages.values())
    if not isinstance(pages, list) or not all(isinstance(p, dict) for p in pages):
        raise Malformed("MediaWiki reply has no query.pages (a list, or an object keyed by page id)")
    return [
        WikiPage(
            title=p.get("title", ""),
            pageid=p.get("pageid"),
            url=p.get("fullurl"),
            revid=p.get("lastrevid"),
            extract=p.get("extract"),
            # Presence is the flag: formatversion=1 writes it as "" (falsy), formatversion=2 as true.
            missing="missing" in p or "invalid" in p,
        )
        for p in pages
    ]


def continuation(body: bytes) -> dict[str, str] | None:
    """The parameters to ask again with when the reply is incomplete (MediaWiki's ``continue``)."""
    more = json_body(body).get("continue")
    if more is None:
        return None
    if not isinstance(more, dict) or not all(isinstance(v, str | int) for v in more.values()):
        raise Malformed("MediaWiki reply has a 'continue' that is not an object of parameters")
    return {k: str(v) for k, v in more.items()}


def merge_pages(earlier: list[WikiPage], later: list[WikiPage]) -> list[WikiPage]:
    """One page per title; a field one reply left empty is taken from another."""
    merged = {p.title: p for p in earlier}
    for page in later:
        if (seen := merged.get(page.title)) is None:
            merged[page.title] = page
            continue
        filled = {f.name: getattr(page, f.name) for f in fields(WikiPage)
                  if getattr(seen, f.name) is None and getattr(page, f.name) is not None}
        merged[page.title] = replace(seen, **filled, missing=seen.missing and page.missing)
    return list(merged.values())


def html_to_wikitext_lines(extract: str) -> str:
    """An HTML extract as the plain-text format writes it: one line per paragraph or list item,
    headings as ``== Title ==`` lines (so the section rules below apply to both formats)."""
    root = lxml.html.fragment_fromstring(extract, create_parent="div")
    lines: list[str] = []
    for block in root.iterchildren():
        if not isinstance(block.tag, str):  # comments and processing instructions carry no prose
            continue
        if block.tag in _HTML_HEADINGS:
            marks = "=" * int(block.tag[1])
            lines += ["", f"{marks} {' '.join(block.text_content().split())} {marks}"]
        elif block.tag in ("ul", "ol", "dl"):
            lines += [" ".join(item.text_content().split()) for item in block.iterchildren() if isinstance(item.tag, str)]
        else:
            lines.append(" ".join(block.text_content().split()))
    return "\n".join(lines)


def clean_extract(extract: str) -> str:
    if _HTML_TAG.search(extract):
        extract = html_to_wikitext_lines(extract)
    out: list[str] = []
    skip_level: int | None = None
    for line in extract.splitlines():
        heading = _HEADING.match(line)
        if heading:
            level, title = len(heading.group(1)), heading.group(2)
            if skip_level is not None and level > skip_level:
                continue
            skip_level = level if title.lower() in DROPPED_SECTIONS else None
            if skip_level is None:
                out.append(title)
            continue
        if skip_level is None:
            out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


def page_document(page: WikiPage, accessed: date) -> dict:
    return {
        "id": f"wikipedia-{page.pageid}",
        "source": "wikipedia",
        "url": page.url or f"https://en.wikipedia.org/wiki/{page.title.replace(' ', '_')}",
        "title": page.title,
        "text": clean_extract(page.extract or ""),
        "date_accessed": accessed.isoformat(),
        "license": "CC-BY-SA-4.0",
        "metadata": {"category": "supplementary", "pageid": page.pageid, "revid": page.revid},
    }
