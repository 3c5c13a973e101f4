"""Curated web pages: main text by trafilatura, without navigation, footers or cookie banners."""

from __future__ import annotations

import hashlib
from datetime import date

import trafilatura

from services.scraper.parsing import Malformed


def page_id(url: str) -> str:
    return "web-" + hashlib.sha256(url.encode()).hexdigest()[:16]


def main_text(body: bytes, encoding: str, url: str, min_chars: int) -> tuple[str, str]:
    """(title, main text) of an HTML page; short or undecodable pages are ``Malformed``."""
    try:
        html = body.decode(encoding)
    except (UnicodeDecodeError, LookupError):
        raise Malformed(f"bytes are not valid {encoding}, the encoding the page declares") from None
    doc = trafilatura.bare_extraction(
        html, url=url, include_comments=False, include_tables=False, favor_precision=True, with_metadata=True
    )
    text = (doc.text or "").strip() if doc else ""
    if len(text) < min_chars:
        raise Malformed(f"main text is {len(text)} characters (< {min_chars}): an error page or no article")
    return (doc.title or "").strip(), text


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
