"""Pure parsing: response bytes in, documents out. No Scrapy here, so tests feed recorded responses.

Every parser raises ``Malformed`` with a short reason when a response is not what its API
promises; the spider turns that into a rejected record and the crawl goes on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from lxml import etree

from shared import userfiles

_HTML_START = re.compile(rb"^\s*(?:<!doctype html|<html)", re.IGNORECASE)


class Malformed(ValueError):
    """A response that cannot be parsed as promised (truncated, wrong type, wrong encoding)."""


def utf8(body: bytes) -> str:
    """Strict UTF-8: a mis-declared encoding is rejected rather than decoded into mojibake."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Malformed(f"not valid UTF-8 (byte {err.object[err.start]:#04x} at offset {err.start})") from None


def json_body(body: bytes) -> Any:
    if _HTML_START.match(body[:200]):
        raise Malformed("an HTML page where JSON was expected (error page served with status 200?)")
    text = utf8(body)
    try:
        userfiles.check_json_depth(text, "response")
        return json.loads(text)
    except userfiles.UnreadableFile as err:
        raise Malformed(str(err)) from None
    except json.JSONDecodeError as err:
        raise Malformed(f"invalid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None


_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True)


def xml_root(body: bytes, expected: str) -> etree._Element:
    """The document element, which must be ``expected``; truncated XML is an error, not recovered."""
    if _HTML_START.match(body[:200]):
        raise Malformed(f"an HTML page where <{expected}> XML was expected (error page served with status 200?)")
    utf8(body)
    try:
        root = etree.fromstring(body, _XML_PARSER)
    except etree.XMLSyntaxError as err:
        raise Malformed(f"truncated or invalid XML: {err}") from None
    if etree.QName(root).localname != expected:
        raise Malformed(f"XML document element is <{root.tag}>, expected <{expected}>")
    return root


def squash(text: str) -> str:
    """Inline whitespace collapsed to single spaces (XML and HTML indent their text)."""
    return re.sub(r"\s+", " ", text).strip()
