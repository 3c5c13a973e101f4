"""``als-lm export run`` (HF + GGUF + quantizations + Modelfile + report) and ``als-lm export ollama``."""

from __future__ import annotations

import logging

import click

from services.exporter.settings import QUANTS, ExporterSettings
from shared.settings import load
from shared.store import open_store

log = logging.getLogger(__name__)


def _announce(stage: str, manifest, ran: bool) -> None:
    if ran:
        click.echo(f"{stage}: published {manifest.run}")
    else:
        click.echo(f"{stage}: skipped (unchanged) {manifest.run}")


@click.group()
def export() -> None:
    """Export the trained model (docs/export.md) and serve it with Ollama."""


@export.command("run")
@click.option("--train-run", default=None, help="'train' (latest, default) or 'train/<run_id>'.")
@click.option("--checkpoint", default=None,
              help="A kept checkpoint of the train run (e.g. step00000300) instead of its best model.pt.")
@click.option("--model-name", default=None, help="The Ollama model name its tags get (default: als-lm).")
@click.option("--quant", "quants", multiple=True, type=click.Choice(QUANTS), help="Repeatable; default: all.")
@click.option("--default-quant", type=click.Choice(QUANTS), default=None, help="The Ollama `latest` tag.")
@click.option("--force", is_flag=True, help="Rerun even when an identical export is published.")
def run(train_run: str | None, checkpoint: str | None, model_name: str | None, quants: tuple[str, ...],
        default_quant: str | None, force: bool) -> None:
    """HF directory, f32/f16 GGUF, llama.cpp quantizations, Modelfile and report -> `export` run."""
    from services.exporter.export import run_export

    overrides = {"train_run": train_run, "checkpoint": checkpoint, "model_name": model_name,
                 "quants": list(quants) or None, "default_quant": default_quant}
    settings = load(ExporterSettings, export={k: v for k, v in overrides.items() if v is not None})
    manifest, ran = run_export(open_store(settings.store), settings, force=force)
    _announce("export", manifest, ran)
    if ran:
        click.echo(manifest_report(manifest, settings))


@export.command("ollama")
@click.option("--host", default=None, help="Ollama server URL (default: ALS_OLLAMA_HOST, http://127.0.0.1:11434).")
@click.option("--export-run", default=None, help="'export' (latest, default) or 'export/<run_id>'.")
@click.option("--force", is_flag=True, help="Recreate and re-verify even when the tags exist.")
def ollama_cmd(host: str | None, export_run: str | None, force: bool) -> None:
    """Create als-lm:<quant> in an Ollama server through its API and verify it -> `serve` run."""
    from services.exporter.serve import run_serve

    overrides = {"host": host, "export_run": export_run}
    settings = load(ExporterSettings, serve={k: v for k, v in overrides.items() if v is not None})
    manifest, ran = run_serve(open_store(settings.store), settings, force=force)
    _announce("serve", manifest, ran)
    if ran:
        click.echo(manifest_report(manifest, settings))


def manifest_report(manifest, settings: ExporterSettings) -> str:
    return open_store(settings.store).get_bytes(manifest.output("report.md").key).decode()
