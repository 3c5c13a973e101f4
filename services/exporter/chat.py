"""``als-lm chat``: the seed's §7.1 REPL over the ollama, direct or llamacpp backend.

Every answer streams as it is generated and is appended, with the settings that produced it,
to ``<logs_dir>/<session start>.jsonl`` (§7.3) for later evaluation.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
from pydantic import ValidationError

from services.exporter.settings import BACKENDS, ExporterSettings, Sampling
from shared import runs
from shared.errors import InvalidInput
from shared.settings import load
from shared.store import open_store

BANNER = """\
╔══════════════════════════════════════════════════════════════╗
║  ALS-LM – Domain-Specific Language Model for ALS Knowledge   ║
║                                                              ║
║  ⚠ DISCLAIMER: This is a research project, not a medical    ║
║  resource. Outputs may contain factual errors. For reliable  ║
║  ALS information, consult qualified healthcare providers.    ║
╠══════════════════════════════════════════════════════════════╣
║  Commands:                                                   ║
║    /help        Show available commands                      ║
║    /config      View/modify generation parameters            ║
║    /benchmark   Run hallucination evaluation (if available)  ║
║    /quit        Exit                                         ║
╚══════════════════════════════════════════════════════════════╝"""

HELP = """\
/help                     this list
/config                   show the generation parameters and the backend
/config <key> <value>     set temperature, top_k, top_p, max_tokens, repeat_penalty or backend
/benchmark                run the hallucination benchmark (`als-lm eval run`) when it is installed
/quit                     exit (also /exit or Ctrl-D)"""

BENCHMARK = Path(__file__).resolve().parents[1] / "evaluator" / "benchmark" / "questions.json"


def open_backend(name: str, settings: ExporterSettings, gguf: Path | None, hf_dir: Path | None):
    """Build a backend; files not given on the command line come from the export run in the store."""
    c, e = settings.chat, settings.export
    if name == "ollama":
        from services.exporter.backends import OllamaBackend

        return OllamaBackend(c.host, c.model, c.keep_alive)
    if name == "llamacpp":
        from services.exporter.backends import LlamaCppBackend

        return LlamaCppBackend(gguf or fetch_export(settings, f"-{c.quant}.gguf"),
                               e.system, e.stop, c.threads)
    if name == "direct":
        from services.exporter.direct import DirectBackend

        return DirectBackend(hf_dir or fetch_export(settings, "hf/"), e.system, e.stop, settings.seed)
    raise click.BadParameter(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}", param_hint="backend")


def fetch_export(settings: ExporterSettings, name: str) -> Path:
    """A directory (``name`` ends in '/') or the GGUF whose name ends in ``name`` (``-Q5_K_M.gguf``) of
    the export run, cached in work_dir. GGUFs are found by their variant because the model name in
    them is the export run's own (a checkpoint's export names its files after the checkpoint)."""
    store = open_store(settings.store)
    manifest = runs.resolve(store, settings.chat.export_run)
    if name.endswith("/"):
        refs = manifest.outputs_under(name)
    else:
        refs = [o for o in manifest.outputs_under("gguf/") if o.name.endswith(name)][:1]
        name = refs[0].name if refs else name
    if not refs:
        ggufs = sorted(o.name.rsplit("-", 1)[-1].removesuffix(".gguf") for o in manifest.outputs_under("gguf/"))
        wanted = f"GGUF variant {name.removeprefix('-').removesuffix('.gguf')}" if name.endswith(".gguf") else name
        raise InvalidInput(f"export run {manifest.run} has no {wanted}; its GGUF variants: {', '.join(ggufs)}")
    cache = Path(settings.work_dir) / "chat" / manifest.run
    for ref in refs:
        if not (cache / ref.name).is_file():
            runs.fetch(store, ref, cache / ref.name)
    return cache / name


class Session:
    def __init__(self, settings: ExporterSettings, backend, gguf: Path | None, hf_dir: Path | None):
        self.settings, self.backend, self.gguf, self.hf_dir = settings, backend, gguf, hf_dir
        self.sampling = settings.export.sampling.model_copy()
        logs = Path(settings.chat.logs_dir)
        logs.mkdir(parents=True, exist_ok=True)
        self.log_path = logs / f"{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.jsonl"

    def answer(self, query: str) -> str:
        parts = []
        try:
            for piece in self.backend.stream(query, self.sampling):
                parts.append(piece)
                click.echo(piece, nl=False)
        except KeyboardInterrupt:
            click.echo(" [interrupted]", nl=False)
        click.echo()
        response = "".join(parts)
        record = {
            "timestamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "query": query, "response": response, "config": self.sampling.model_dump(),
            "backend": self.backend.name, "model": self.backend.model,
        }
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        return response

    def command(self, line: str) -> bool:
        """Handle a /command; False means quit."""
        cmd, *args = line.split()
        if cmd in ("/quit", "/exit"):
            return False
        if cmd == "/help":
            click.echo(HELP)
        elif cmd == "/config":
            self.config(args[1:] if args[:1] == ["set"] else args)
        elif cmd == "/benchmark":
            self.benchmark()
        else:
            click.echo(f"unknown command {cmd}; /help lists them")
        return True

    def config(self, args: list[str]) -> None:
        if not args:
            for key, value in self.sampling.model_dump().items():
                click.echo(f"  {key:<15} {value}")
            click.echo(f"  {'backend':<15} {self.backend.name} ({self.backend.model})")
            return
        if len(args) != 2:
            click.echo("usage: /config <key> <value>")
            return
        key, value = args
        if key == "backend":
            try:
                self.backend = open_backend(value, self.settings, self.gguf, self.hf_dir)
            except (click.ClickException, ValueError, RuntimeError) as err:
                click.echo(f"error: {getattr(err, 'message', err)}; still using {self.backend.name}")
                return
        elif key in Sampling.model_fields:
            try:
                setattr(self.sampling, key, value)
            except ValidationError as err:
                click.echo(f"error: {key}={value!r}: {err.errors()[0]['msg']}")
                return
        else:
            click.echo(f"error: unknown setting {key!r}; known: {', '.join([*Sampling.model_fields, 'backend'])}")
            return
        click.echo(f"{key} = {getattr(self.sampling, key, value)}")

    def benchmark(self) -> None:
        if not BENCHMARK.is_file() or importlib.util.find_spec("services.evaluator.cli") is None:
            click.echo("the hallucination benchmark is not available in this installation (services/evaluator)")
            return
        click.echo("running `als-lm eval run` ...")
        rc = subprocess.call([sys.executable, "-m", "als_lm", "eval", "run"])
        click.echo("benchmark finished" if rc == 0 else f"benchmark failed (exit code {rc})")


@click.command()
@click.option("--backend", type=click.Choice(BACKENDS), default=None, help="Default: ALS_CHAT__BACKEND or ollama.")
@click.option("--host", default=None, help="ollama backend: server URL.")
@click.option("--model", default=None, help="ollama backend: model[:tag], e.g. als-lm:q8_0.")
@click.option("--quant", default=None, help="llamacpp backend: GGUF variant of the export run (Q5_K_M, f16, ...).")
@click.option("--gguf", type=click.Path(path_type=Path), default=None, help="llamacpp backend: a GGUF file.")
@click.option("--hf-dir", type=click.Path(path_type=Path), default=None, help="direct backend: an HF model directory.")
@click.option("--export-run", default=None, help="'export' (latest) or 'export/<run_id>' for direct/llamacpp.")
@click.option("--logs-dir", type=click.Path(path_type=Path), default=None, help="Where the JSONL query logs go.")
@click.option("--prompt", default=None, help="Answer this one question and exit (non-interactive).")
def chat(backend, host, model, quant, gguf, hf_dir, export_run, logs_dir, prompt) -> None:
    """Ask the model questions (docs/export.md). A research artifact, not a medical resource."""
    overrides = {"backend": backend, "host": host, "model": model, "quant": quant, "export_run": export_run,
                 "logs_dir": logs_dir}
    settings = load(ExporterSettings, chat={k: v for k, v in overrides.items() if v is not None})
    session = Session(settings, open_backend(settings.chat.backend, settings, gguf, hf_dir), gguf, hf_dir)
    if prompt is not None:
        click.echo("ALS-LM is a research artifact, not a medical resource; outputs may be wrong.", err=True)
        session.answer(prompt)
        return
    click.echo(BANNER)
    while True:
        try:
            line = input("als-lm> ").strip()
        except EOFError:
            click.echo()
            break
        if not line:
            continue
        if line.startswith("/"):
            if not session.command(line):
                break
        else:
            try:
                session.answer(line)
            except (ValueError, RuntimeError, ConnectionError) as err:
                click.echo(f"\nerror: {err}")
