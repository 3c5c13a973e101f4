"""The GPUs `als-lm train --plan` knows by name: memory, dense bf16 peak and host link.

Figures are the vendors' data sheets; each is a stated assumption of the plan, printed with it,
and every one can be overridden (``--gpu-memory-gb``, ``--gpu-tflops``, ``--pcie-gbs``).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.errors import InvalidInput

GIB = 2**30


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gib: float  # the total nvidia-smi reports, before the CUDA context takes its share
    bf16_tflops: float  # dense bf16 tensor-core peak with fp32 accumulation
    pcie_gbs: float  # host<->device copies of pinned memory: ~75 % of the link's theoretical rate
    model: str  # what torch.cuda.get_device_name() contains for this card

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * GIB)


# PCIe 4.0 x16 is 32 GB/s a direction in theory, 5.0 x16 64 GB/s; pinned copies reach ~75 % of it.
# GeForce cards run bf16 tensor cores at half rate with fp32 accumulation (the 3060's 25.6, not 51).
GPUS: dict[str, GPU] = {
    "rtx3060-12gb": GPU("NVIDIA GeForce RTX 3060 12 GB", 12.0, 25.6, 24.0, "RTX 3060"),
    "rtx3090-24gb": GPU("NVIDIA GeForce RTX 3090 24 GB", 24.0, 71.0, 24.0, "RTX 3090"),
    "rtx4090-24gb": GPU("NVIDIA GeForce RTX 4090 24 GB", 23.99, 165.2, 24.0, "RTX 4090"),
    "l4-24gb": GPU("NVIDIA L4 24 GB", 22.5, 121.0, 24.0, "L4"),
    "a100-40gb": GPU("NVIDIA A100 40 GB (SXM/PCIe)", 40.0, 312.0, 24.0, "A100"),
    "a100-80gb": GPU("NVIDIA A100 80 GB (SXM/PCIe)", 80.0, 312.0, 24.0, "A100"),
    "h100-80gb": GPU("NVIDIA H100 80 GB SXM", 79.65, 989.0, 48.0, "H100"),
    "h200-141gb": GPU("NVIDIA H200 141 GB SXM", 140.4, 989.0, 48.0, "H200"),
}


def for_device(device_name: str, memory_bytes: int) -> GPU | None:
    """The catalogue entry for a CUDA device name (``torch.cuda.get_device_name``), with its real memory."""
    from dataclasses import replace

    matches = [gpu for gpu in GPUS.values() if gpu.model in device_name]
    if not matches:
        return None
    closest = min(matches, key=lambda gpu: abs(gpu.memory_gib - memory_bytes / GIB))  # A100 40 GB vs 80 GB
    return replace(closest, name=device_name, memory_gib=memory_bytes / GIB)


def lookup(name: str) -> GPU:
    try:
        return GPUS[name]
    except KeyError:
        raise InvalidInput(f"unknown GPU {name!r}; known: {', '.join(GPUS)} "
                         "(or give --gpu-memory-gb and --gpu-tflops)") from None
