"""``als-lm``: one command line over every stage.

Subcommands are imported only when run, so ``als-lm --help`` answers without loading torch.
"""

from __future__ import annotations

import importlib
import sys

import click

from shared import log

COMMANDS = {
    "doctor": ("als_lm.doctor:doctor", "Check the machine: Python, torch/CUDA, DeepSpeed, server binaries, disk, store."),
    "config": ("als_lm.config_cmd:config", "Print the effective settings (secrets masked)."),
    "artifacts": ("als_lm.artifacts_cmd:artifacts", "List, show, fetch, put, verify and trace artifacts in the store."),
    "scrape": ("services.scraper.cli:scrape", "Collect raw documents (Scrapy spiders, or the bundled sample)."),
    "process": ("services.processor.cli:process", "Clean, deduplicate, filter and split the raw corpus."),
    "tokenize": ("services.processor.cli:tokenize", "Train and validate the BPE tokenizer; write token shards."),
    "train": ("services.trainer.cli:train", "Train the GPT-2 model with DeepSpeed."),
    "export": ("services.exporter.cli:export", "Export to Hugging Face and GGUF, quantize, create the Ollama model."),
    "chat": ("services.exporter.chat:chat", "The interactive CLI demo (Ollama, direct PyTorch or llama.cpp)."),
    "rag": ("services.evaluator.cli:rag", "Build the retrieval index (ChromaDB) for the RAG baseline."),
    "eval": ("services.evaluator.cli:eval_group", "Run, score and review the hallucination benchmark."),
    "probe": ("services.evaluator.cli:probe_group", "Probe what a model stores: cloze items scored by likelihood."),
    "report": ("services.evaluator.cli:report", "Write the comparison report (Markdown + HTML)."),
    "ui": ("services.evaluator.ui:ui", "Serve the Gradio chat and comparison UI."),
    "demo": ("als_lm.demo:demo", "Run the whole pipeline on the bundled sample, on CPU, with a local store."),
    "experiment": ("als_lm.experiment:experiment",
                   "Learning curves over kept checkpoints, RAG and closed-book on every question, fact exposure."),
    "experiment-extract": ("als_lm.extract:experiment_extract",
                           "The extraction arm: QA text for half of the probed facts, a second model, both halves."),
    "explore": ("als_lm.explore:explore", "Open the UI over a demo's or an experiment's results, without Docker."),
}


class LazyGroup(click.Group):
    """click's documented lazy-loading pattern: resolve a subcommand only when it is invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        target, _ = COMMANDS[name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as err:
            raise click.ClickException(
                f"`als-lm {name}` needs {err.name!r}, which is not installed; run `make setup` "
                "(or `uv sync --extra <service>`)"
            ) from None
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Stages and tools"):
            formatter.write_dl([(name, help_) for name, (_, help_) in COMMANDS.items()])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors; no progress bars.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), default=None,
              help="Overrides ALS_LOG_LEVEL.")
@click.version_option(package_name="als-lm")
def cli(quiet: bool, log_level: str | None) -> None:
    """ALS-LM: train a GPT-2-style model on ALS text, serve it, and measure how it hallucinates.

    A research project, not a medical resource. Each stage reads its inputs from the artifact
    store and publishes its outputs with a manifest; rerunning an unchanged stage is skipped.
    """
    from shared.settings import CommonSettings, check_env_file, load

    check_env_file()
    level = log_level or load(CommonSettings).log_level
    log.setup(level, quiet)


def main() -> None:
    """Entry point: expected failures (``AlsError``) become one clear line and exit code 1; anything
    else is a bug and keeps its traceback."""
    from shared.errors import AlsError

    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        err.show()
        sys.exit(err.exit_code)
    except AlsError as err:
        click.secho(f"error: {err}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
