"""The ``train`` stage: token shards from the latest ``tokenize`` run (or ``train.tokens_run``) in, ``model.pt`` and metrics out.

Every rank runs this; rank 0 decides whether the run is needed and publishes it. Checkpoints
live in ``<work_dir>/train/<lineage>/`` where the lineage hashes the model shape, the token shards and
the seed, so rerunning after a crash or SIGTERM resumes, and another model, corpus or seed starts fresh.
The store is the caller's: every rank runs ``als-lm train``, which opens it from the settings.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch.distributed as dist

from services.trainer import checkpoints, monitor
from services.trainer.data import unigram_loss
from services.trainer.settings import TrainerSettings
from services.trainer.train import Trainer, export_model, init_distributed, model_config, resolve_device
from shared import runs, stages
from shared.errors import InvalidInput
from shared.manifest import Manifest
from shared.runs import RunWriter
from shared.schemas.corpus import TokenShardsMeta
from shared.schemas.model import read_metrics
from shared.store import ArtifactStore

log = logging.getLogger(__name__)

INPUTS = ["train.bin", "val.bin", "meta.json", "tokenizer.json"]
TOKEN_STAGES = ("tokenize", "extract-tokens")
"""Stages whose token shards a model trains on: the corpus's, or the corpus's plus the extraction arm's QA text."""


def _read_meta(path: Path) -> TokenShardsMeta:
    try:
        return TokenShardsMeta.model_validate_json(path.read_text())
    except ValueError as err:
        raise InvalidInput(f"meta.json of the tokenize run is invalid: {err}") from None


def run(store: ArtifactStore, settings: TrainerSettings, *, force: bool = False) -> tuple[Manifest | None, bool]:
    """The published (or unchanged) run on rank 0; ``None`` on the other ranks, which only train."""
    cfg = settings.train
    device = resolve_device(cfg.device)  # a missing GPU is reported before anything is fetched
    tokenize = runs.resolve(store, cfg.tokens_run) if cfg.tokens_run else runs.latest(store, "tokenize")
    if tokenize.stage not in TOKEN_STAGES:
        raise InvalidInput(f"train.tokens_run {cfg.tokens_run!r} is a {tokenize.stage} run, not one of {TOKEN_STAGES}")
    inputs = runs.inputs_from(tokenize, INPUTS)
    stage_settings = stages.fingerprint_settings("train", settings)

    fingerprint = runs.fingerprint("train", stage_settings, inputs)
    alone = int(os.environ.get("WORLD_SIZE", "1")) == 1
    # One process decides before the process group loads DeepSpeed's JIT-built op (built again for each virtual
    # environment: ~35 s that a rerun with nothing changed would otherwise spend); ranks decide together after.
    decision = [None if force or not alone else runs.find_published(store, "train", fingerprint)]
    if decision[0] is not None:
        return decision[0], False
    init_distributed(device)
    rank = dist.get_rank()
    if not alone:
        if rank == 0 and not force:
            decision[0] = runs.find_published(store, "train", fingerprint)
        dist.broadcast_object_list(decision, src=0)
        if decision[0] is not None:
            return decision[0], False

    local = Path(settings.work_dir) / "train" / "inputs" / tokenize.run_id
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        for ref in inputs:
            runs.fetch(store, ref, local / ref.key.rsplit("/", 1)[1])
    dist.barrier()
    meta = _read_meta(local / "meta.json")
    lineage = hashlib.sha256(json.dumps(
        [model_config(cfg, meta.vocab_size).to_dict(), [i.sha256 for i in inputs], settings.seed], sort_keys=True
    ).encode()).hexdigest()[:12]
    run_dir = cfg.checkpoint_dir or Path(settings.work_dir) / "train" / f"{cfg.preset}-{lineage}"

    trainer = Trainer(cfg, settings.seed, local / "train.bin", local / "val.bin", meta.vocab_size, run_dir)

    def body(writer: RunWriter, scratch: Path) -> None:
        result = trainer.fit()
        writer.put_file("model.pt", export_model(result.best_checkpoint, scratch / "model.pt"))
        writer.put_file("tokenizer.json", local / "tokenizer.json")
        writer.put_file("metrics.csv", run_dir / "metrics.csv")
        monitor.plot(run_dir / "metrics.csv", scratch / "plots")
        writer.put_tree("plots", scratch / "plots")
        kept = _publish_kept(writer, run_dir, cfg.kept_steps, scratch)
        snapshots = _publish_snapshots(writer, run_dir, cfg.probe_steps, trainer.tokens_per_step)
        writer.metrics.update(
            preset=cfg.preset,
            params=trainer.num_params,
            steps=result.step,
            tokens_seen=result.tokens_seen,
            best_val_loss=result.best_val_loss,
            best_checkpoint=result.best_checkpoint.name,
            unigram_val_loss=unigram_loss(trainer.train_shard, trainer.val_shard, meta.vocab_size),
            stopped_early=result.stopped_early,
            device=trainer.device,
            precision=trainer.precision,
            zero_stage=trainer.zero_stage,
            world_size=trainer.world_size,
            checkpoint_dir=str(run_dir),
            checkpoints=kept,
            snapshots=snapshots,
        )

    if rank == 0:
        # force: the skip decision was taken above, for every rank at once
        manifest, ran = runs.run_stage(store, "train", stage_settings, inputs, body, work_dir=settings.work_dir,
                                       force=True)
    else:
        trainer.fit()
        manifest, ran = None, True
    dist.barrier()
    return manifest, ran


def _publish_kept(writer: RunWriter, run_dir: Path, steps: list[int], scratch: Path) -> list[dict]:
    """Each kept checkpoint as ``checkpoints/<name>/model.pt``, and what the learning curve needs of it.

    The train loss is the logged one at that step (``metrics.csv``), the validation loss the one
    measured when the checkpoint was saved. A step the run never reached (early stopping) is named.
    """
    rows = {r.step: r for r in read_metrics(run_dir / "metrics.csv")}
    kept = []
    for step in steps:
        path = run_dir / checkpoints.tag(step)
        if not (path / checkpoints.MARKER).exists():
            log.warning("train: no checkpoint at step %d to keep (the run stopped at an earlier step)", step)
            continue
        info = checkpoints.CheckpointInfo.model_validate_json((path / checkpoints.MARKER).read_text())
        name = path.name
        (scratch / name).mkdir(parents=True, exist_ok=True)
        writer.put_file(f"checkpoints/{name}/model.pt", export_model(path, scratch / name / "model.pt"))
        (scratch / name / "model.pt").unlink()  # one checkpoint on the scratch disk at a time
        row = rows.get(step)
        kept.append({"name": name, "step": step, "tokens_seen": info.tokens_seen,
                     "train_loss": row.train_loss if row else None, "val_loss": info.val_loss})
    return kept


def _publish_snapshots(writer: RunWriter, run_dir: Path, steps: list[int], tokens_per_step: int) -> list[dict]:
    """Each probe snapshot as ``snapshots/<name>/model.pt`` (the probe's dense curve); a step the run never
    reached is named."""
    published = []
    for step in steps:
        path = checkpoints.snapshot_path(run_dir, step)
        if not path.exists():
            log.warning("train: no probe snapshot at step %d (the run stopped at an earlier step)", step)
            continue
        name = path.parent.name
        writer.put_file(f"snapshots/{name}/model.pt", path)
        published.append({"name": name, "step": step, "tokens_seen": step * tokens_per_step})
    return published
