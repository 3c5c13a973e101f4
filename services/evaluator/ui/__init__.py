"""``als-lm ui``: the Gradio evaluator app (chat, compare, benchmark, review, training)."""

from __future__ import annotations

import click

from services.evaluator.ui.settings import UISettings
from shared.settings import load


@click.command(name="ui")
@click.option("--host", default=None, help="Interface to bind (overrides ALS_UI__HOST; default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (overrides ALS_UI__PORT; default 7860).")
def ui(host: str | None, port: int | None) -> None:
    """Serve the evaluator UI on 127.0.0.1 (no public share links; basic auth from ALS_UI__AUTH_*).

    Chat and Compare ask the from-scratch model (ALS_EVAL__SCRATCH_MODEL or the latest serve run)
    and the RAG baseline (latest rag-index run, ALS_RAG__GENERATOR_MODEL) through ALS_OLLAMA_HOST.
    """
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = load(UISettings, **({"ui": overrides} if overrides else {}))
    from services.evaluator.ui.app import launch

    launch(settings)
