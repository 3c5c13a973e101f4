"""llama.cpp's quantizer, called in-process through llama-cpp-python (§6.2).

K-quants pack rows in super-blocks of 256 values. When a matrix's row length (n_embd or 4*n_embd)
is not a multiple of 256, llama.cpp does not fail: it quantizes that tensor with a 32-block
type instead (Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0, or F16 when even 32 does not divide).
``quantize`` reads the written file back so the report states exactly what happened.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import gguf
import llama_cpp
from pydantic import BaseModel

from shared.errors import InvalidInput

FTYPES = {
    "Q8_0": llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0,
    "Q5_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q5_K_M,
    "Q4_K_M": llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M,
}
K_BLOCK = 256


class QuantOutcome(BaseModel):
    tensor_types: dict[str, int]
    fallback: dict[str, str]  # tensor name -> the type llama.cpp used instead of a K-quant


def quantize(src: Path, dst: Path, quant: str, threads: int) -> QuantOutcome:
    if quant not in FTYPES:
        raise InvalidInput(f"unknown quantization {quant!r}; known: {', '.join(FTYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = FTYPES[quant]
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(params))
    if rc != 0 or not dst.is_file():
        raise RuntimeError(f"llama.cpp failed to quantize {src.name} to {quant} (return code {rc})")
    return inspect(dst, quant)


def inspect(path: Path, quant: str) -> QuantOutcome:
    types: dict[str, int] = {}
    fallback: dict[str, str] = {}
    for t in gguf.GGUFReader(str(path)).tensors:
        name = t.tensor_type.name
        types[name] = types.get(name, 0) + 1
        # shape[0] is ggml's ne0: the row length the quantizer blocks over.
        if "_K" in quant and len(t.shape) >= 2 and int(t.shape[0]) % K_BLOCK and name != "F32":
            fallback[t.name] = name
    return QuantOutcome(tensor_types=dict(sorted(types.items())), fallback=fallback)
