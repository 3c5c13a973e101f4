"""``als-lm process`` and ``als-lm tokenize``: flags only; the stages are services/processor/stages/."""

from __future__ import annotations

import click

from shared.commands import FORCE, run_stage_command


@click.command()
@FORCE
def process(force: bool) -> None:
    """Clean, deduplicate, filter and split the latest raw corpus of every scraper (docs/processing.md)."""
    from services.processor.settings import ProcessorSettings
    from services.processor.stages import process as stage
    from shared.settings import load

    run_stage_command(stage.run, load(ProcessorSettings), force)


@click.command()
@FORCE
def tokenize(force: bool) -> None:
    """Train and validate the BPE tokenizer on the latest processed corpus; write token shards (docs/processing.md)."""
    from services.processor.settings import ProcessorSettings
    from services.processor.stages import tokenize as stage
    from shared.settings import load

    run_stage_command(stage.run, load(ProcessorSettings), force)
