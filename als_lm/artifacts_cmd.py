"""``als-lm artifacts``: look into the artifact store, fetch from it, put into it, verify it, trace a run."""

from __future__ import annotations

import re
from pathlib import Path

import click
from rich.table import Table

from shared import runs
from shared.errors import InvalidInput
from shared.log import out
from shared.manifest import Manifest
from shared.runs import RunNotFound
from shared.settings import CommonSettings
from shared.store import ArtifactStore, open_store, validate_key

STAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def _store():
    return open_store(CommonSettings().store)


@click.group()
def artifacts() -> None:
    """Published runs are those with a manifest; anything else is invisible to stages."""


@artifacts.command("ls")
@click.argument("stage", required=False)
def ls(stage: str | None) -> None:
    """List stages, or the published runs of STAGE."""
    store = _store()
    table = Table("stage", "run", "created", "outputs", "size")
    for name in [stage] if stage else runs.stages(store):
        for m in runs.runs(store, name):
            size = sum(o.size for o in m.outputs)
            table.add_row(m.stage, m.run_id, f"{m.created:%Y-%m-%d %H:%M:%S}", str(len(m.outputs)), f"{size:,}")
    out.print(table)


@artifacts.command()
@click.argument("run")
def show(run: str) -> None:
    """Print the manifest of RUN (<stage> for the latest, or <stage>/<run_id>)."""
    click.echo(runs.resolve(_store(), run).model_dump_json(indent=2))


@artifacts.command()
@click.argument("run")
@click.argument("name")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Destination file.")
def get(run: str, name: str, output: Path | None) -> None:
    """Download output NAME of RUN, checking its sha256."""
    store = _store()
    manifest = runs.resolve(store, run)
    ref = manifest.output(name)
    dest = output or Path(Path(name).name)
    runs.fetch(store, ref, dest)
    click.echo(f"{ref.key} -> {dest} ({ref.size:,} bytes, sha256 ok)")


@artifacts.command()
@click.argument("stage")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def put(stage: str, files: tuple[Path, ...]) -> None:
    """Publish FILES as a new run of STAGE (for hand-made inputs)."""
    if not STAGE_NAME.fullmatch(stage):
        raise InvalidInput(f"stage name {stage!r} is not one path segment of letters, digits, '.', '_' and '-' "
                           "(e.g. manual-input)")
    names = [path.name for path in files]
    for name in names:
        validate_key(name)  # every key checked before the first upload: a refused run uploads nothing
    if len(set(names)) < len(names):
        raise InvalidInput(f"two files share a name ({', '.join(sorted({n for n in names if names.count(n) > 1}))}); "
                           "an output is named by its file name")
    writer = runs.RunWriter(_store(), stage, {"manual": True}, [])
    try:
        for path in files:
            writer.put_file(path.name, path)
    except BaseException:
        writer.discard()
        raise
    manifest = writer.publish()
    click.echo(f"published {manifest.run} with {len(manifest.outputs)} output(s)")


@artifacts.command()
@click.argument("run", required=False)
def verify(run: str | None) -> None:
    """Re-hash the outputs of RUN (or of every published run) and report mismatches."""
    store = _store()
    manifests = [runs.resolve(store, run)] if run else [m for s in runs.stages(store) for m in runs.runs(store, s)]
    bad = 0
    for m in manifests:
        problems = runs.verify(store, m)
        for p in problems:
            click.secho(f"MISMATCH {m.run}: {p}", fg="red")
        bad += bool(problems)
    click.echo(f"verified {len(manifests)} run(s): {len(manifests) - bad} intact, {bad} with problems")
    if bad:
        raise SystemExit(1)


@artifacts.command()
@click.argument("run")
def trace(run: str) -> None:
    """Walk RUN's recorded inputs back to the scrape runs: every run it was built from, and what it read."""
    store = _store()
    manifest = runs.resolve(store, run)
    seen: set[str] = set()
    # Plain lines, not a rich Tree: run ids must never be cropped to the terminal's width.
    click.echo("\n".join([manifest.run, *_branch(store, manifest, "", seen)]))
    scrapes = sorted(r for r in seen if r.startswith("scrape-"))
    click.echo(f"{len(seen)} upstream run(s) in the store; scrape run(s): {', '.join(scrapes) or 'none reached'}")


def _branch(store: ArtifactStore, manifest: Manifest, indent: str, seen: set[str]) -> list[str]:
    """One line per run ``manifest`` read from (bundled files as leaves), depth first; a run reached
    twice is expanded once."""
    by_run: dict[str, list[str]] = {}
    for ref in manifest.inputs:
        by_run.setdefault(ref.run, []).append(ref.name or ref.key)
    lines = []
    for position, (source, names) in enumerate(by_run.items(), 1):
        last = position == len(by_run)
        head, below = indent + ("└── " if last else "├── "), indent + ("    " if last else "│   ")
        read = ", ".join(names if len(names) <= 4 else [*names[:3], f"... {len(names) - 3} more"])
        if source == "bundled":
            lines.append(f"{head}bundled: {read}")
        elif source in seen:
            lines.append(f"{head}{source} reads {read} (expanded above)")
        else:
            try:
                upstream = runs.resolve(store, source)
            except RunNotFound:
                lines.append(f"{head}{source} not in the store, reads {read}")
                continue
            seen.add(source)
            lines += [f"{head}{source} reads {read}", *_branch(store, upstream, below, seen)]
    return lines
