"""The curated source list (``sources.yaml``) and the inventory generated from it (docs/sources.md).

§2.2.3-2.2.5: a finite list of pages chosen by hand, each with its category and licence; patient
narratives carry an ethics justification, and private forums or gated communities are refused.
Regenerate the inventory with ``python -m services.scraper.sources``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from shared import userfiles
from shared.errors import InvalidInput

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "docs" / "sources.md"

# A guard, not a substitute for review: hosts and paths of communities that need a login or are
# spaces people share in expecting privacy (§2.2.4: never private forums or gated communities).
GATED_HOSTS = ("facebook.com", "reddit.com", "patientslikeme.com", "inspire.com", "healthunlocked.com",
               "smartpatients.com", "discord.com", "discord.gg")
GATED_PATHS = ("/forum", "/forums", "/community", "/groups/", "/members/", "/login")


class WebSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    category: Literal["educational", "narrative", "supplementary"]
    publisher: str = Field(min_length=1)
    license: str = Field(min_length=1, description="SPDX-like id, or the copyright terms in words")
    title: str | None = None
    justification: str | None = Field(None, description="why publishing this in a corpus is appropriate")

    @field_validator("url")
    @classmethod
    def _public_page(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL")
        host = parts.hostname or ""
        if any(host == h or host.endswith("." + h) for h in GATED_HOSTS) or any(
            p in parts.path.lower() for p in GATED_PATHS
        ):
            raise ValueError(f"{url!r} looks like a forum or gated community, which is never scraped")
        return url

    @model_validator(mode="after")
    def _narratives_are_justified(self) -> WebSource:
        if self.category == "narrative" and not (self.justification or "").strip():
            raise ValueError(f"narrative {self.url} needs an ethics justification")
        return self


class SourceList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    web: list[WebSource] = []
    wikipedia: list[str] = Field([], description="English Wikipedia article titles")

    @model_validator(mode="after")
    def _unique(self) -> SourceList:
        for name, values in (("url", [s.url for s in self.web]), ("title", self.wikipedia)):
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"duplicate {name}(s): {', '.join(dupes)}")
        return self


def load_sources(path: Path) -> SourceList:
    data = userfiles.read_yaml(path, "source list") or {}
    try:
        return SourceList.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(userfiles.summarize(f"source list {path} is invalid",
                                               userfiles.validation_problems(err))) from None


def render_inventory(sources: SourceList) -> str:
    lines = [
        "# Source inventory",
        "",
        "Generated from `services/scraper/sources.yaml` by `python -m services.scraper.sources`; edit the YAML,",
        "not this file. PubMed Central and ClinicalTrials.gov are queried through their APIs (see",
        "[scraping.md](scraping.md)); this is the hand-curated part of the corpus (design §2.2.3-2.2.5).",
        "",
    ]
    for category in ("educational", "narrative", "supplementary"):
        entries = [s for s in sources.web if s.category == category]
        if not entries:
            continue
        lines += [f"## Web: {category}", "", "| Page | Publisher | Licence |" + (" Ethics justification |" if category == "narrative" else ""),
                  "|---|---|---|" + ("---|" if category == "narrative" else "")]
        for s in entries:
            row = f"| [{s.title or s.url}]({s.url}) | {s.publisher} | {s.license} |"
            lines.append(row + (f" {s.justification.strip()} |" if category == "narrative" else ""))
        lines.append("")
    if sources.wikipedia:
        lines += ["## Wikipedia (supplementary, CC BY-SA 4.0)", ""]
        lines += [f"- [{t}](https://en.wikipedia.org/wiki/{t.replace(' ', '_')})" for t in sources.wikipedia]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    """Write docs/sources.md; with ``--check``, fail when it is out of date."""
    text = render_inventory(load_sources(Path(__file__).resolve().parent / "sources.yaml"))
    if "--check" in argv:
        if not INVENTORY.exists() or INVENTORY.read_text(encoding="utf-8") != text:
            print(f"{INVENTORY} is out of date; run python -m services.scraper.sources", file=sys.stderr)
            return 1
        return 0
    INVENTORY.parent.mkdir(parents=True, exist_ok=True)
    INVENTORY.write_text(text, encoding="utf-8")
    print(f"wrote {INVENTORY}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
