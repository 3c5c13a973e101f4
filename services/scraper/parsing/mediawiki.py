"""MediaWiki action API replies (``prop=extracts&explaintext=1``, ``formatversion=2``).

Section headings arrive as ``== Title ==``; they become plain lines, and the sections that are
lists of links or citations (See also, References, ...) are dropped with their subsections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from services.scraper.parsing import Malformed, json_body

DROPPED_SECTIONS = {
    "see also", "references", "external links", "further reading", "notes", "bibliography",
    "sources", "citations", "footnotes", "notes and references",
}
_HEADING = re.compile(r"^(={2,6})\s*(.*?)\s*\1\s*$")


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
    if not isinstance(pages, list):
        raise Malformed("MediaWiki reply has no query.pages list (formatversion=2 expected)")
    return [
        WikiPage(
            title=p.get("title", ""),
            pageid=p.get("pageid"),
            url=p.get("fullurl"),
            revid=p.get("lastrevid"),
            extract=p.get("extract"),
            missing=bool(p.get("missing") or p.get("invalid")),
        )
        for p in pages
    ]


def clean_extract(extract: str) -> str:
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
