"""``als-lm explore``: the evaluator UI over a demo's or an experiment's results, without Docker.

It starts Ollama on 127.0.0.1 over the folder's own models (the served checkpoints and the RAG
generator are already there) and points the UI at the folder's store. After an experiment, the
UI's from-scratch model is its final checkpoint, named in the latest ``experiment.json``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from als_lm.stack import LocalStack
from shared import runs
from shared.log import console
from shared.store import ArtifactStore, open_store


def final_model(store: ArtifactStore) -> str | None:
    """The Ollama tag of the latest experiment's final checkpoint; None when there is no experiment."""
    from services.evaluator.stages.experiment import latest

    found = latest(store)
    if found is None:
        return None
    result = found[1]
    serve = runs.resolve(store, result.checkpoints[-1].serve_run)
    return next((t for t in serve.metrics.get("tags", []) if t.endswith(":latest")), None)


@click.command()
@click.option("--root", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=Path("volumes/experiment"), show_default=True,
              help="The folder of a `make demo` (volumes/demo) or `make experiment` (volumes/experiment).")
@click.option("--store", "store_kind", type=click.Choice(["local", "minio"]), default="local", show_default=True,
              help="The store that run used (`--store minio` starts its MinIO server again).")
@click.option("--port", type=int, default=None, help="UI port (default: ALS_UI__PORT, 7860).")
def explore(root: Path, store_kind: str, port: int | None) -> None:
    """Open the UI over the results under ROOT: Ollama on 127.0.0.1, the folder's store; Ctrl-C stops both."""
    if store_kind == "local" and not (root / "artifacts").is_dir():
        raise click.ClickException(f"{root} holds no local store (no {root / 'artifacts'}); run `make demo` or "
                                   "`make experiment` first, or pass the --root they used")
    # The demo and the experiment each keep their bucket in their own MinIO data folder.
    bucket = next((b for b in ("als-lm-experiment", "als-lm-demo") if (root / "minio" / "data" / b).is_dir()),
                  "als-lm-demo")
    with LocalStack(root, store_kind, bucket=bucket) as stack:
        env = dict(stack.env)
        if model := final_model(open_store(stack.store_settings)):
            env["ALS_EVAL__SCRATCH_MODEL"] = model
            console.print(f"from-scratch model: {model} (the experiment's final checkpoint)")
        argv = [sys.executable, "-m", "als_lm", "ui", *(["--port", str(port)] if port else [])]
        try:
            subprocess.run(argv, env=env, check=False)
        except KeyboardInterrupt:
            console.print("stopping the UI and Ollama")
