"""A report as plain blocks (paragraphs, tables, charts), rendered once to Markdown and once to HTML.

The HTML embeds every chart as a base64 PNG, so the page is one self-contained file.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class Chart:
    name: str  # charts/<name>.png
    caption: str
    png: bytes


@dataclass
class Section:
    title: str
    blocks: list[str | Table | Chart] = field(default_factory=list)


def _cell(text: str) -> str:
    """A table cell on one line: a pipe would end the cell, a newline the row."""
    return " ".join(text.split("\n")).replace("|", "\\|")


def to_markdown(title: str, sections: list[Section]) -> str:
    out = [f"# {title}", ""]
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, Table):
                out.append("| " + " | ".join(block.headers) + " |")
                out.append("|" + "|".join("---" for _ in block.headers) + "|")
                out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in block.rows]
            elif isinstance(block, Chart):
                out.append(f"![{block.caption}](charts/{block.name}.png)")
            else:
                out.append(block)
            out.append("")
    return "\n".join(out)


def to_html(title: str, sections: list[Section]) -> str:
    e = html.escape
    body = [f"<h1>{e(title)}</h1>"]
    for section in sections:
        body.append(f"<h2>{e(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                head = "".join(f"<th>{e(h)}</th>" for h in block.headers)
                rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in block.rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
            elif isinstance(block, Chart):
                data = base64.b64encode(block.png).decode()
                body.append(f'<figure><img alt="{e(block.caption)}" src="data:image/png;base64,{data}">'
                            f"<figcaption>{e(block.caption)}</figcaption></figure>")
            else:
                body.append(f"<p>{e(block)}</p>")
    style = ("body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
             "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.25rem .5rem;"
             "font-size:.9rem;text-align:left}th{background:#f3f3f3}img{max-width:100%}"
             "figcaption{font-size:.85rem;color:#555}")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
            f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
