"""``als-lm train``: every ``train`` setting is an option (``--max-steps 100``), after ``--config FILE``.

Precedence, lowest first: defaults, ``.env`` and ``ALS_TRAIN__*``, the YAML file, the options.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click
import yaml

from services.trainer.settings import TrainConfig, TrainerSettings
from shared.settings import SettingsError, load, masked

log = logging.getLogger(__name__)


def _setting_options(command):
    """One option per TrainConfig field; pydantic parses and checks the values, click only collects them."""
    for name, info in reversed(TrainConfig.model_fields.items()):
        flag = name.replace("_", "-")
        help_ = f"{info.description or ''} [default: {info.default}]".strip()
        if info.annotation in (bool, bool | None):
            command = click.option(f"--{flag}/--no-{flag}", name, default=None, help=help_)(command)
        else:
            command = click.option(f"--{flag}", name, default=None, metavar="VALUE", help=help_)(command)
    return command


def settings_from(config_file: Path | None, options: dict) -> TrainerSettings:
    section = load(TrainerSettings).train.model_dump()
    if config_file is not None:
        loaded = yaml.safe_load(config_file.read_text()) or {}
        if not isinstance(loaded, dict):
            raise SettingsError(f"{config_file} must be a mapping of train settings, not {type(loaded).__name__}")
        unknown = sorted(set(loaded) - set(TrainConfig.model_fields))
        if unknown:
            raise SettingsError(f"{config_file}: unknown train setting(s) {', '.join(unknown)}")
        section.update(loaded)
    section.update({k: v for k, v in options.items() if v is not None})
    return load(TrainerSettings, train=section)


@click.group(invoke_without_command=True)
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="YAML file of train settings, e.g. services/trainer/configs/tiny-cpu.yaml")
@click.option("--force", is_flag=True, help="Train even if an identical run is already published.")
@_setting_options
@click.pass_context
def train(ctx: click.Context, config_file: Path | None, force: bool, **options) -> None:
    """Train the GPT-2 model on the latest tokenize run and publish the `train` stage.

    Interrupted runs (SIGTERM, a crash) resume from their last complete checkpoint when rerun.
    With a launcher: `deepspeed --hostfile hosts -m services.trainer.cli ...` (see docs/training.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    from services.trainer import stage
    from services.trainer.train import TrainingInterrupted

    settings = settings_from(config_file, options)
    log.info("effective train settings: %s", json.dumps(masked(settings)["train"], default=str))
    try:
        manifest, ran = stage.run(settings, force=force)
    except TrainingInterrupted as stop:
        click.secho(str(stop), fg="yellow", err=True)
        raise SystemExit(143) from None
    if manifest is None:  # a rank other than 0: rank 0 reports
        return
    if ran:
        m = manifest.metrics
        click.echo(f"published {manifest.run}: {m['steps']} steps, best val loss {m['best_val_loss']:.4f} "
                   f"(unigram baseline {m['unigram_val_loss']:.4f})")
    else:
        click.echo(f"skipped (unchanged): {manifest.run}")


@train.command()
@click.argument("source", required=False)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("plots"),
              show_default=True, help="Directory for the PNG files.")
def plot(source: str | None, out: Path) -> None:
    """Plot a metrics CSV: SOURCE is a CSV path (a live run's <checkpoint dir>/metrics.csv) or a
    published run (`train` = the latest, or `train/<run_id>`); default: the latest published run."""
    from services.trainer.monitor import plot as plot_csv
    from shared import runs
    from shared.store import open_store

    if source and Path(source).is_file():
        csv_path = Path(source)
    else:
        store = open_store(load(TrainerSettings).store)
        manifest = runs.resolve(store, source or "train")
        out.mkdir(parents=True, exist_ok=True)
        csv_path = runs.fetch(store, manifest.output("metrics.csv"), out / "metrics.csv")
    for path in plot_csv(csv_path, out):
        click.echo(str(path))

