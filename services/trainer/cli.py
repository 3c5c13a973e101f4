"""``als-lm train``: every ``train`` setting is an option (``--max-steps 100``), after ``--config FILE``.

Precedence, lowest first: defaults, ``.env`` and ``ALS_TRAIN__*``, the YAML file, the options.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import click

from services.trainer.settings import TrainConfig, TrainerSettings
from shared import userfiles
from shared.commands import FORCE, announce
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


PLAN_OPTIONS = (
    click.option("--gpu", metavar="NAME", help="--plan: a known GPU (rtx3060-12gb, rtx4090-24gb, a100-40gb, "
                 "a100-80gb, h100-80gb, h200-141gb)"),
    click.option("--gpu-memory-gb", type=float, help="--plan: GPU memory in GiB (with --gpu-tflops, or overriding --gpu)"),
    click.option("--gpu-tflops", type=float, help="--plan: dense bf16 peak in TFLOP/s"),
    click.option("--pcie-gbs", type=float, help="--plan: host<->GPU copy bandwidth in GB/s [default: the GPU's]"),
    click.option("--mfu", type=float, help="--plan: fraction of the bf16 peak the kernels reach [default: 0.35]"),
    click.option("--reserve-gb", type=float, help="--plan: GiB kept for the CUDA context and slack [default: 1]"),
    click.option("--host-memory-gb", type=float, help="--plan: host RAM in GiB [default: this machine's]"),
    click.option("--cpu-adam-ns", type=float,
                 help="--plan: CPU Adam ns a parameter [default: measured here, on a slice]"),
    click.option("--vocab-size", type=int, help="--plan: vocabulary [default: the seed's 16384]"),
    click.option("--n-layer", type=click.IntRange(min=1), help="--plan: layers, instead of the preset's"),
    click.option("--n-head", type=click.IntRange(min=1), help="--plan: attention heads, instead of the preset's"),
    click.option("--n-embd", type=click.IntRange(min=1), help="--plan: width, instead of the preset's"),
    click.option("--top", type=int, default=10, show_default=True, help="--plan: rows in the table"),
    click.option("--json", "as_json", is_flag=True, help="--plan: the whole plan as JSON"),
)


def _plan_options(function):
    """The --plan flag and its options, collected into one ``plan_options`` dict."""
    names = ("gpu", "gpu_memory_gb", "gpu_tflops", "pcie_gbs", "mfu", "reserve_gb", "host_memory_gb",
             "cpu_adam_ns", "vocab_size", "n_layer", "n_head", "n_embd", "top", "as_json")

    @functools.wraps(function)
    def command(*args, **kwargs):
        return function(*args, plan_options={n: kwargs.pop(n) for n in names}, **kwargs)

    for option in reversed(PLAN_OPTIONS):
        command = option(command)
    return click.option("--plan", is_flag=True, help="Print the GPU plan (memory, speed, fastest fitting "
                        "configuration) for these settings; trains nothing.")(command)


def _plan(cfg: TrainConfig, gpu: str | None, gpu_memory_gb: float | None, gpu_tflops: float | None,
          pcie_gbs: float | None, mfu: float | None, reserve_gb: float | None, host_memory_gb: float | None,
          cpu_adam_ns: float | None, vocab_size: int | None, n_layer: int | None, n_head: int | None,
          n_embd: int | None, top: int, as_json: bool) -> None:
    from dataclasses import replace

    from services.trainer import plan
    from services.trainer.gpus import GPU, lookup

    if gpu is not None:
        card = lookup(gpu)
    elif gpu_memory_gb is None or gpu_tflops is None:
        raise click.UsageError("--plan needs --gpu NAME, or --gpu-memory-gb with --gpu-tflops")
    else:
        card = GPU(f"custom GPU ({gpu_memory_gb:g} GiB, {gpu_tflops:g} TFLOP/s)", gpu_memory_gb, gpu_tflops, 24.0, "custom")
    for value, name in ((gpu_memory_gb, "memory_gib"), (gpu_tflops, "bf16_tflops"), (pcie_gbs, "pcie_gbs")):
        if value is not None:
            if value <= 0:
                raise click.UsageError(f"--{name} must be positive, not {value}")
            card = replace(card, **{name: value})
    result = plan.make_plan(
        cfg, card, mfu=plan.DEFAULT_MFU if mfu is None else mfu,
        reserve_gib=plan.DEFAULT_RESERVE_GIB if reserve_gb is None else reserve_gb,
        host_memory_gib=host_memory_gb, cpu_adam_ns_per_param=cpu_adam_ns, vocab_size=vocab_size or plan.SEED_VOCAB,
        shape={"n_layer": n_layer, "n_head": n_head, "n_embd": n_embd})
    if as_json:
        click.echo(result.model_dump_json(indent=2))
    else:
        plan.print_plan(result, top)
    if not result.asked.fits:
        raise SystemExit(1)  # the table shows what would fit; the exit status says the asked one does not


def settings_from(config_file: Path | None, options: dict) -> TrainerSettings:
    section = load(TrainerSettings).train.model_dump()
    if config_file is not None:
        loaded = userfiles.read_yaml(config_file, "train config") or {}
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
@FORCE
@_plan_options
@_setting_options
@click.pass_context
def train(ctx: click.Context, config_file: Path | None, force: bool, plan: bool, plan_options: dict,
          **options) -> None:
    """Train the GPT-2 model on the latest tokenize run and publish the `train` stage.

    Interrupted runs (SIGTERM, a crash) resume from their last complete checkpoint when rerun.
    With a launcher, every rank runs this command: `deepspeed --hostfile hosts --no_python
    --no_local_rank als-lm train ...` (see docs/training.md).
    `--plan --gpu NAME` prints whether these settings fit that GPU, how long they take and the
    fastest configuration that fits, without training (docs/training.md).
    """
    if ctx.invoked_subcommand is not None:
        return
    if plan:
        _plan(settings_from(config_file, options).train, **plan_options)
        return
    from services.trainer.stages import train as stage
    from services.trainer.train import TrainingInterrupted
    from shared.store import open_store

    settings = settings_from(config_file, options)
    log.info("effective train settings: %s", json.dumps(masked(settings)["train"], default=str))
    try:
        manifest, ran = stage.run(open_store(settings.store), settings, force=force)
    except TrainingInterrupted as stop:
        click.secho(str(stop), fg="yellow", err=True)
        raise SystemExit(143) from None
    if manifest is None:  # a rank other than 0: rank 0 reports
        return
    m = manifest.metrics
    announce(manifest, ran, f"{m['steps']} steps, best val loss {m['best_val_loss']:.4f} "
                            f"(unigram baseline {m['unigram_val_loss']:.4f})")


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

