"""What every stage's command line shares, so a ``cli.py`` only declares its flags.

A stage itself is ``services/<service>/stages/<stage>.py`` with one public
``run(store, settings, *, force) -> (Manifest, ran)``; the command builds the settings (environment,
then the flags, validated by the settings class so a bad value is refused with its field's name),
opens the store, runs the stage and announces the run in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from shared.manifest import Manifest
from shared.settings import CommonSettings, load
from shared.store import ArtifactStore, open_store

S = TypeVar("S", bound=CommonSettings)
StageRun = Callable[..., tuple[Manifest, bool]]

FORCE = click.option("--force", is_flag=True, help="Run even when an identical run is already published.")


def settings_with(cls: type[S], **sections: dict[str, Any]) -> S:
    """``cls`` from the environment, with the flags given in each section (``None`` = not given)
    laid over it; the settings class validates them."""
    given = {name: {k: v for k, v in flags.items() if v is not None} for name, flags in sections.items()}
    return load(cls, **{name: flags for name, flags in given.items() if flags})


def announce(manifest: Manifest, ran: bool, detail: str = "") -> None:
    """One line: the run published (with ``detail``), or the unchanged run that was kept."""
    if ran:
        click.echo(f"{manifest.stage}: published {manifest.run}" + (f" ({detail})" if detail else ""))
    else:
        click.echo(f"{manifest.stage}: skipped (unchanged), see {manifest.run}")


def run_stage_command(run: StageRun, settings: CommonSettings, force: bool,
                      detail: Callable[[Manifest], str] | None = None) -> tuple[ArtifactStore, Manifest, bool]:
    """Run a stage on the store its settings name and announce the result; returns the store and
    the run for a command that prints more."""
    store = open_store(settings.store)
    manifest, ran = run(store, settings, force=force)
    announce(manifest, ran, detail(manifest) if detail and ran else "")
    return store, manifest, ran
