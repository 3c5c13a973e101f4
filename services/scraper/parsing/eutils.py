"""NCBI E-utilities esearch envelopes.

The spider asks for JSON (``retmode=json``); the XML ``<eSearchResult>`` is E-utilities' default
format and what a request whose ``retmode`` was lost comes back as, so both are read the same way
rather than one of them rejecting a good answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from services.scraper.parsing import Malformed, json_body, xml_root

_XML_START = re.compile(rb"^\s*(?:<\?xml|<!DOCTYPE eSearchResult|<eSearchResult)")


@dataclass(frozen=True)
class SearchPage:
    count: int
    retstart: int
    ids: list[str]
    webenv: str | None
    query_key: str | None


def parse_esearch(body: bytes) -> SearchPage:
    if _XML_START.match(body[:300]):
        return _parse_xml(body)
    data = json_body(body)
    if not isinstance(data, dict):
        raise Malformed("esearch reply is not a JSON object")
    if "error" in data:
        raise Malformed(f"esearch error: {data['error']}")
    result = data.get("esearchresult")
    if not isinstance(result, dict):
        raise Malformed("esearch reply has no esearchresult")
    if "ERROR" in result:
        raise Malformed(f"esearch error: {result['ERROR']}")
    try:
        return SearchPage(
            count=int(result["count"]),
            retstart=int(result.get("retstart", 0)),
            ids=[str(i) for i in result["idlist"]],
            webenv=result.get("webenv"),
            query_key=result.get("querykey"),
        )
    except (KeyError, TypeError, ValueError) as err:
        raise Malformed(f"esearch reply is incomplete: {err!r}") from None


def _parse_xml(body: bytes) -> SearchPage:
    root = xml_root(body, "eSearchResult")
    if (error := root.findtext("ERROR")) is not None:
        raise Malformed(f"esearch error: {error.strip()}")
    count, ids = root.findtext("Count"), root.find("IdList")
    if count is None or ids is None:
        raise Malformed("esearch reply is incomplete: no Count or IdList")
    try:
        return SearchPage(
            count=int(count),
            retstart=int(root.findtext("RetStart") or 0),
            ids=[(i.text or "").strip() for i in ids.iterfind("Id")],
            webenv=root.findtext("WebEnv"),
            query_key=root.findtext("QueryKey"),
        )
    except ValueError as err:
        raise Malformed(f"esearch reply is incomplete: {err}") from None
