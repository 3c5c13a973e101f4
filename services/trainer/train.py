"""The training loop, visible top to bottom: batch -> forward -> backward -> step -> log -> eval -> checkpoint.

The same code runs as one CPU process (DeepSpeed's CPU accelerator, gloo), on one CUDA GPU, or
as N data-parallel ranks started by ``deepspeed`` / ``torchrun`` on one or several machines:
DeepSpeed reduces the gradients, each rank reads its own random windows.
"""

from __future__ import annotations

import atexit
import json
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from pydantic import ValidationError
from torch.optim.lr_scheduler import LambdaLR

from services.trainer import checkpoints
from services.trainer.data import Batches, TokenShard, eval_batches
from services.trainer.model import GPT, PRESETS, GPTConfig
from services.trainer.monitor import MetricsCSV, gpu_figures, peak_flops
from services.trainer.settings import CONFIG_DIR, DEEPSPEED_BY_PRESET, TrainConfig
from shared import userfiles
from shared.errors import InvalidInput
from shared.schemas.model import MetricsRow
from shared.servers import free_port

log = logging.getLogger(__name__)

# Set from the train settings; a DeepSpeed file that also sets them would be a second source of truth.
OWNED_KEYS = (
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
    "gradient_clipping", "bf16", "fp16", "optimizer", "scheduler",
)


class TrainingInterrupted(Exception):
    """SIGTERM arrived; the state was checkpointed and the run can be resumed."""

    def __init__(self, step: int, checkpoint: Path):
        super().__init__(f"stopped by SIGTERM at step {step}; checkpoint {checkpoint}; rerun to resume")
        self.step, self.checkpoint = step, checkpoint


def resolve_device(requested: str) -> str:
    has_cuda = torch.cuda.is_available()
    if requested == "cuda" and not has_cuda:
        raise InvalidInput(
            "device 'cuda' was requested but torch sees no CUDA device "
            f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); use --device cpu or auto"
        )
    return "cuda" if requested == "cuda" or (requested == "auto" and has_cuda) else "cpu"


def init_distributed(device: str) -> None:
    """Join (or create) the process group. Idempotent.

    Without a launcher there is no RANK/WORLD_SIZE in the environment and DeepSpeed would fall
    back to MPI discovery (mpi4py); a single process declares itself rank 0 of 1 instead.
    """
    os.environ["DS_ACCELERATOR"] = device  # read once, when deepspeed is first imported
    if "RANK" not in os.environ:
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(free_port()))
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    if get_accelerator().device_name() != device:
        raise RuntimeError(
            f"DeepSpeed was already set up for {get_accelerator().device_name()!r} in this process; "
            f"cannot train on {device!r} (start a new process)"
        )
    if device == "cuda":
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    if not dist.is_initialized():
        deepspeed.init_distributed(dist_backend="nccl" if device == "cuda" else "gloo")
        # A gloo group left to the interpreter's teardown aborts the process ("terminate called without
        # an active exception", exit -6, seen on the skip path): destroy it while the process is sound.
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())


def model_config(cfg: TrainConfig, vocab_size: int) -> GPTConfig:
    preset = dict(PRESETS[cfg.preset])
    if cfg.block_size is not None:
        preset["block_size"] = cfg.block_size
    return GPTConfig(**preset, vocab_size=vocab_size, dropout=cfg.dropout)


def deepspeed_config(cfg: TrainConfig, device: str, precision: str) -> dict:
    """The repository's DeepSpeed file for the preset, with the train settings filled in."""
    path = cfg.deepspeed_config or CONFIG_DIR / "deepspeed" / f"{DEEPSPEED_BY_PRESET[cfg.preset]}.json"
    ds = userfiles.read_json(path, "DeepSpeed config", userfiles.CONFIG_LIMIT)
    if not isinstance(ds, dict):
        raise InvalidInput(f"DeepSpeed config {path} must be a JSON object")
    if clash := [k for k in OWNED_KEYS if k in ds]:
        raise InvalidInput(
            f"DeepSpeed config {path} sets {', '.join(clash)}; these come from the train settings "
            "(--micro-batch, --grad-accum, --grad-clip, --precision, --lr ...): remove them from the file"
        )
    zero = ds.setdefault("zero_optimization", {"stage": 0})
    if cfg.zero_stage is not None:
        zero["stage"] = cfg.zero_stage
    if cfg.offload is not None:
        zero["offload_optimizer"] = {"device": "none" if cfg.offload == "none" else "cpu", "pin_memory": True}
        zero["offload_param"] = {"device": "cpu" if cfg.offload == "optimizer+params" else "none",
                                 "pin_memory": True}
    if device == "cpu":  # pinned host memory only exists next to a GPU
        for section in ("offload_optimizer", "offload_param"):
            if isinstance(zero.get(section), dict):
                zero[section]["pin_memory"] = False

    from deepspeed.runtime.zero.config import DeepSpeedZeroConfig

    try:
        checked = DeepSpeedZeroConfig(**zero)
    except (ValidationError, TypeError) as err:
        raise InvalidInput(f"DeepSpeed config {path}: invalid zero_optimization: {err}") from None
    offload_optimizer = checked.offload_optimizer is not None and checked.offload_optimizer.device != "none"
    offload_param = checked.offload_param is not None and checked.offload_param.device != "none"
    if offload_param and checked.stage != 3:
        raise InvalidInput(f"DeepSpeed config {path}: parameter offload needs ZeRO stage 3, not {checked.stage}")
    if offload_optimizer and checked.stage == 0:
        raise InvalidInput(f"DeepSpeed config {path}: optimizer offload needs ZeRO stage 1-3, not 0")

    adam = {"lr": cfg.lr, "betas": [cfg.beta1, cfg.beta2], "eps": 1e-8, "weight_decay": cfg.weight_decay}
    if not offload_optimizer:
        adam["torch_adam"] = True  # torch.optim.AdamW: no JIT-compiled kernel needed
    ds.update(
        train_micro_batch_size_per_gpu=cfg.micro_batch,
        gradient_accumulation_steps=cfg.grad_accum,
        gradient_clipping=cfg.grad_clip,
        bf16={"enabled": precision == "bf16"},
        optimizer={"type": "AdamW", "params": adam},  # offloaded: DeepSpeedCPUAdam in AdamW mode
    )
    return ds


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to the peak, cosine decay to min_lr at max_steps (nanoGPT's get_lr)."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / (cfg.warmup + 1)
    if step >= cfg.max_steps:
        return cfg.min_lr
    ratio = (step - cfg.warmup) / max(1, cfg.max_steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (cfg.lr - cfg.min_lr)


@dataclass
class Result:
    step: int
    tokens_seen: int
    best_val_loss: float | None
    best_checkpoint: Path | None
    stopped_early: bool
    history: list[dict] = field(default_factory=list)  # every step's train loss (and val loss)


class Trainer:
    """One rank's share of a run. Collective: every rank constructs it and calls ``fit``."""

    def __init__(self, cfg: TrainConfig, seed: int, train_bin: Path, val_bin: Path, vocab_size: int,
                 run_dir: Path):
        self.cfg, self.seed, self.run_dir = cfg, seed, Path(run_dir)
        self.device = resolve_device(cfg.device)
        self.precision = cfg.precision if cfg.precision != "auto" else ("bf16" if self.device == "cuda" else "fp32")
        self.model_config = model_config(cfg, vocab_size)
        # Everything that can be wrong with the input is checked before a process group or a
        # checkpoint is touched.
        self.train_shard = TokenShard(train_bin, self.model_config.block_size, vocab_size)
        self.val_shard = TokenShard(val_bin, self.model_config.block_size, vocab_size)
        self.resume_from = self._checkpoint_to_resume()
        self.kept_steps = frozenset(cfg.kept_steps)
        self.probe_steps = frozenset(cfg.probe_steps)
        init_distributed(self.device)  # first: it picks DeepSpeed's accelerator before anything imports it
        self.ds_config = deepspeed_config(cfg, self.device, self.precision)
        import deepspeed

        self.rank, self.world_size = dist.get_rank(), dist.get_world_size()
        if self.resume_from and self.resume_from[1].world_size != self.world_size:
            raise InvalidInput(
                f"checkpoint {self.resume_from[0]} was written by {self.resume_from[1].world_size} rank(s); "
                f"this run has {self.world_size}: resume with the same number of processes"
            )
        torch.manual_seed(seed)  # identical initial weights on every rank
        model = GPT(self.model_config, gradient_checkpointing=cfg.checkpointing)
        self.num_params = model.num_params()
        self.flops_per_token = model.flops_per_token()
        self.engine, *_ = deepspeed.initialize(
            model=model,
            model_parameters=model.param_groups(cfg.weight_decay),
            config=self.ds_config,
            lr_scheduler=lambda optimizer: LambdaLR(optimizer, lambda s: lr_at(s, cfg) / cfg.lr),
        )
        torch.manual_seed(seed + self.rank)  # dropout masks differ between ranks, as their data does
        self.batches = Batches(self.train_shard, cfg.micro_batch, seed, self.rank)
        self.zero_stage = self.ds_config["zero_optimization"]["stage"]
        if self.probe_steps and self.zero_stage == 3:
            raise InvalidInput("probe_at_fractions: ZeRO stage 3 partitions the weights across ranks, and a "
                               "probe snapshot is one rank's copy of them; use stage 0-2 or no snapshots")
        self.peak_flops = peak_flops(self.device, cfg.peak_tflops)
        if self.rank == 0:
            log.info(
                "model: %s preset, %s parameters (%s without embeddings), %s; world size %d, %s, ZeRO %d",
                cfg.preset, f"{self.num_params:,}", f"{model.num_params(non_embedding=True):,}",
                self.model_config, self.world_size, self.precision, self.zero_stage,
            )
            log.info("deepspeed config: %s", json.dumps(self.ds_config))

    def _checkpoint_to_resume(self) -> tuple[Path, checkpoints.CheckpointInfo] | None:
        found = checkpoints.last(self.run_dir) if self.run_dir.exists() else None
        if found and not self.cfg.resume:
            raise InvalidInput(
                f"{self.run_dir} already holds checkpoints (last: {found[0].name}) and resume is off; "
                "choose another --checkpoint-dir or remove that one, nothing was overwritten"
            )
        if found and found[1].model != self.model_config.to_dict():
            diff = {k: (found[1].model.get(k), v) for k, v in self.model_config.to_dict().items()
                    if found[1].model.get(k) != v}
            raise InvalidInput(
                f"checkpoint {found[0]} is from another architecture: "
                + ", ".join(f"{k} {old} there vs {new} here" for k, (old, new) in diff.items())
            )
        return found

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.micro_batch * self.cfg.grad_accum * self.model_config.block_size * self.world_size

    def _to_device(self, t: torch.Tensor) -> torch.Tensor:
        return t.to(self.engine.device, non_blocking=True)

    def _mean_over_ranks(self, value: float) -> float:
        t = torch.tensor([value], dtype=torch.float64, device=self.engine.device)
        dist.all_reduce(t)
        return t.item() / self.world_size

    @torch.no_grad()
    def evaluate(self) -> float:
        self.engine.eval()
        losses = [
            self.engine(self._to_device(x), self._to_device(y))[1].item()
            for x, y in eval_batches(self.val_shard, self.cfg.eval_batches, self.cfg.micro_batch, self.seed)
        ]
        self.engine.train()
        return sum(losses) / len(losses)

    def fit(self) -> Result:
        cfg = self.cfg
        step, tokens_seen, best, stale = 0, 0, None, 0
        if self.rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partial(self.run_dir)
        dist.barrier()
        if self.resume_from:
            path, info = self.resume_from
            state = checkpoints.load(self.engine, path)
            torch.set_rng_state(state["torch_rng"])
            if self.device == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"])
            self.batches.load_state_dict(state["data"])
            step, tokens_seen = info.step, info.tokens_seen
            best, stale = info.best_val_loss, info.evals_without_improvement
            if self.rank == 0:
                log.info("resumed from %s (step %d, %s tokens seen)", path, step, f"{tokens_seen:,}")
        csv = MetricsCSV(self.run_dir / "metrics.csv", step if self.resume_from else None) if self.rank == 0 else None

        stop = {"sigterm": False}
        previous_handler = signal.signal(signal.SIGTERM, lambda *_: stop.update(sigterm=True))
        result = Result(step, tokens_seen, best, None, stopped_early=False)
        started, window_time, window_tokens = time.time(), 0.0, 0
        try:
            while step < cfg.max_steps and not self._early_stop(stale):
                lr = self.engine.get_lr()[0]
                t0 = time.time()
                loss_sum = 0.0
                for _ in range(cfg.grad_accum):
                    x, y = self.batches.next()
                    _, loss = self.engine(self._to_device(x), self._to_device(y))
                    self.engine.backward(loss)
                    self.engine.step()
                    loss_sum += loss.item()
                step += 1
                tokens_seen += self.tokens_per_step
                window_time += time.time() - t0
                window_tokens += self.tokens_per_step
                train_loss = self._mean_over_ranks(loss_sum / cfg.grad_accum)

                sigterm = self._mean_over_ranks(float(stop["sigterm"])) > 0  # every rank stops at the same step
                checkpoint_due = (step % cfg.checkpoint_interval == 0 or step == cfg.max_steps or sigterm
                                  or step in self.kept_steps)
                val_loss = None
                if step % cfg.eval_interval == 0 or checkpoint_due:
                    val_loss = self.evaluate()
                    if best is None or val_loss < best:
                        best, stale, checkpoint_due = val_loss, 0, True  # always keep the best weights
                    else:
                        stale += 1
                result.history.append({"step": step, "train_loss": train_loss, "val_loss": val_loss})

                if step % cfg.log_interval == 0 or val_loss is not None:
                    tokens_per_s = window_tokens / window_time
                    row = MetricsRow(
                        step=step, train_loss=train_loss, val_loss=val_loss, lr=lr, tokens_seen=tokens_seen,
                        tokens_per_s=tokens_per_s,
                        mfu=(self.flops_per_token * tokens_per_s / (self.peak_flops * self.world_size)
                             if self.peak_flops else None),
                        elapsed_s=time.time() - started, **gpu_figures(),
                    )
                    window_time, window_tokens = 0.0, 0
                    if csv:
                        csv.append(row)
                        log.info("step %d: train %.4f%s, lr %.2e, %.0f tok/s", step, train_loss,
                                 f", val {val_loss:.4f}" if val_loss is not None else "", lr, tokens_per_s)

                if step in self.probe_steps and self.rank == 0:
                    self._snapshot(step)
                if checkpoint_due or self._early_stop(stale):
                    info = checkpoints.CheckpointInfo(
                        step=step, tokens_seen=tokens_seen, val_loss=val_loss, best_val_loss=best,
                        evals_without_improvement=stale, world_size=self.world_size,
                        zero_stage=self.zero_stage, model=self.model_config.to_dict(),
                    )
                    saved = checkpoints.save(self.engine, self.run_dir, info, self._trainer_state(),
                                             cfg.keep_checkpoints, self.kept_steps)
                    if sigterm:
                        raise TrainingInterrupted(step, saved)
        finally:
            signal.signal(signal.SIGTERM, previous_handler)

        found = checkpoints.best(self.run_dir) or checkpoints.last(self.run_dir)
        result.step, result.tokens_seen, result.best_val_loss = step, tokens_seen, best
        result.best_checkpoint = found[0] if found else None
        result.stopped_early = self._early_stop(stale)
        if result.stopped_early and self.rank == 0:
            log.info("early stop at step %d: %d evaluations without improvement", step, stale)
        return result

    def _snapshot(self, step: int) -> Path:
        """The weights alone at ``step``, as ``model.pt`` is written (``{"config", "model"}``) in the dtype
        the forward pass uses: a point of the probe's learning curve, not a state to resume from."""
        dest = checkpoints.snapshot_path(self.run_dir, step)
        dest.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu() for k, v in self.engine.module.state_dict().items()}
        tmp = dest.with_name(dest.name + ".tmp")
        torch.save({"config": self.model_config.to_dict(), "model": state}, tmp)
        os.replace(tmp, dest)
        return dest

    def _early_stop(self, stale: int) -> bool:
        return 0 < self.cfg.early_stopping_patience <= stale

    def _trainer_state(self) -> dict:
        return {
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state() if self.device == "cuda" else None,
            "data": self.batches.state_dict(),
        }


def export_model(checkpoint: Path, dest: Path) -> Path:
    """``model.pt`` as the exporter expects it: ``{"config": ..., "model": fp32 state dict}``."""
    info = checkpoints.CheckpointInfo.model_validate_json((checkpoint / checkpoints.MARKER).read_text())
    tmp = dest.with_name(dest.name + ".tmp")
    torch.save({"config": info.model, "model": checkpoints.consolidated_state_dict(checkpoint)}, tmp)
    os.replace(tmp, dest)
    return dest
