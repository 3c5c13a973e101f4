"""NCBI E-utilities esearch envelopes (JSON, ``retmode=json``)."""

from __future__ import annotations

from dataclasses import dataclass

from services.scraper.parsing import Malformed, json_body


@dataclass(frozen=True)
class SearchPage:
    count: int
    retstart: int
    ids: list[str]
    webenv: str | None
    query_key: str | None


def parse_esearch(body: bytes) -> SearchPage:
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
