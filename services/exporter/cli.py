"""``als-lm export run`` and ``als-lm export ollama``: flags only; the stages are services/exporter/stages/."""

from __future__ import annotations

import click

from services.exporter.settings import QUANTS
from shared.commands import FORCE, run_stage_command, settings_with
from shared.manifest import Manifest
from shared.store import ArtifactStore


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
@FORCE
def run(train_run: str | None, checkpoint: str | None, model_name: str | None, quants: tuple[str, ...],
        default_quant: str | None, force: bool) -> None:
    """HF directory, f32/f16 GGUF, llama.cpp quantizations, Modelfile and report -> `export` run."""
    from services.exporter.settings import ExporterSettings
    from services.exporter.stages import export as stage

    settings = settings_with(ExporterSettings, export={
        "train_run": train_run, "checkpoint": checkpoint, "model_name": model_name,
        "quants": list(quants) or None, "default_quant": default_quant})
    store, manifest, ran = run_stage_command(stage.run, settings, force)
    if ran:
        click.echo(manifest_report(store, manifest))


@export.command("ollama")
@click.option("--host", default=None, help="Ollama server URL (default: ALS_OLLAMA_HOST, http://127.0.0.1:11434).")
@click.option("--export-run", default=None, help="'export' (latest, default) or 'export/<run_id>'.")
@FORCE
def ollama_cmd(host: str | None, export_run: str | None, force: bool) -> None:
    """Create als-lm:<quant> in an Ollama server through its API and verify it -> `serve` run.

    The tags are created again when the server lacks them, even if the run is unchanged."""
    from services.exporter.settings import ExporterSettings
    from services.exporter.stages import serve as stage

    settings = settings_with(ExporterSettings, serve={"host": host, "export_run": export_run})
    store, manifest, ran = run_stage_command(stage.run, settings, force)
    if ran:
        click.echo(manifest_report(store, manifest))


def manifest_report(store: ArtifactStore, manifest: Manifest) -> str:
    """The run's report.md, printed after the one-line announcement."""
    return store.get_bytes(manifest.output("report.md").key).decode()
