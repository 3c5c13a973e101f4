"""``als-lm scrape <spider>``: flags only; the stage is services/scraper/stages/scrape.py."""

from __future__ import annotations

from typing import get_args

import click

from services.scraper.settings import ScraperSettings, Source
from shared.commands import FORCE, run_stage_command, settings_with


@click.command()
@click.argument("spider", type=click.Choice(get_args(Source)))
@click.option("--max-docs", type=click.IntRange(min=1), default=None,
              help="Stop after this many documents (overrides ALS_SCRAPE__MAX_DOCUMENTS).")
@FORCE
def scrape(spider: str, max_docs: int | None, force: bool) -> None:
    """Collect raw documents and publish them as run scrape-SPIDER.

    pmc, clinicaltrials, web and wikipedia crawl their source politely (robots.txt where it
    applies, rate limits, retries) and resume where they stopped; sample publishes the bundled
    sample corpus.
    """
    from services.scraper.stages import scrape as stage

    run_stage_command(stage.run, settings_with(ScraperSettings, scrape={"source": spider, "max_documents": max_docs}),
                      force, detail=lambda m: f"{m.metrics['documents']} documents, {m.metrics['rejected']} rejected")
