"""``als-lm config``: the effective settings of every service, secrets masked."""

from __future__ import annotations

import importlib
import json

import click

from shared.settings import CommonSettings, masked

# Each service's Settings class; a missing optional extra is reported, not fatal.
SERVICE_SETTINGS = {
    "scraper": "services.scraper.settings:ScraperSettings",
    "processor": "services.processor.settings:ProcessorSettings",
    "trainer": "services.trainer.settings:TrainerSettings",
    "exporter": "services.exporter.settings:ExporterSettings",
    "evaluator": "services.evaluator.settings:EvaluatorSettings",
    "ui": "services.evaluator.ui.settings:UISettings",
}


def settings_class(service: str) -> type[CommonSettings]:
    module, attr = SERVICE_SETTINGS[service].split(":")
    return getattr(importlib.import_module(module), attr)


@click.command()
@click.option("--service", type=click.Choice(["common", *SERVICE_SETTINGS]), default=None,
              help="Only this service's settings.")
def config(service: str | None) -> None:
    """Print the effective settings (defaults < .env < ALS_* environment) as JSON."""
    names = [service] if service else ["common", *SERVICE_SETTINGS]
    out = {}
    for name in names:
        cls = CommonSettings if name == "common" else settings_class(name)
        data = masked(cls())
        if name != "common":
            data = {k: v for k, v in data.items() if k not in CommonSettings.model_fields}
        out[name] = data
    click.echo(json.dumps(out, indent=2, default=str))
