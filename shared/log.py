"""One logging setup and one progress-bar factory for every stage (rich, silenced by --quiet)."""

from __future__ import annotations

import logging

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)
# Command results (tables, reports) go to stdout so they can be piped; logs and progress to stderr.
out = Console()
_quiet = False


def setup(level: str = "INFO", quiet: bool = False) -> None:
    global _quiet
    _quiet = quiet
    logging.basicConfig(
        level="WARNING" if quiet else level,
        format="%(message)s",
        datefmt="[%X]",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("urllib3", "httpx", "scrapy", "filelock", "matplotlib", "chromadb", "DeepSpeed"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def progress() -> Progress:
    """A progress bar for long operations; disabled under --quiet or when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=_quiet,
        transient=not console.is_terminal,
    )
