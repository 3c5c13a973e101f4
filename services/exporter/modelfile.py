"""The Ollama Modelfile of §6.3, and the same parameters as the create API wants them."""

from __future__ import annotations

import json
from typing import Any

from services.exporter.settings import TEMPLATE, ExportConfig


def parameters(cfg: ExportConfig, block_size: int) -> dict[str, Any]:
    s = cfg.sampling
    return {
        "temperature": s.temperature,
        "top_p": s.top_p,
        "top_k": s.top_k,
        "repeat_penalty": s.repeat_penalty,
        # A context longer than the learned position table would index past it.
        "num_ctx": min(cfg.num_ctx, block_size),
        "num_batch": cfg.num_batch,
        **({"num_thread": cfg.num_thread} if cfg.num_thread else {}),
        "stop": list(cfg.stop),
    }


def render(cfg: ExportConfig, gguf_file: str, block_size: int) -> str:
    lines = [f"FROM ./{gguf_file}", ""]
    for key, value in parameters(cfg, block_size).items():
        for v in value if isinstance(value, list) else [value]:
            lines.append(f"PARAMETER {key} {json.dumps(v) if isinstance(v, str) else v}")
    lines += ["", f'SYSTEM """{cfg.system}"""', "", f'TEMPLATE """{TEMPLATE}"""', ""]
    return "\n".join(lines)
