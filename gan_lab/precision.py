"""Which floating-point policy training uses: bfloat16 where the CPU or GPU computes it natively."""

from pathlib import Path

import tensorflow as tf

from gan_lab.config import Precision


def resolve_precision(precision: Precision) -> str:
    """The Keras dtype policy for ``train.precision``; ``auto``: bfloat16 where the hardware has it."""
    if precision != Precision.auto:
        return precision.value
    return "mixed_bfloat16" if bf16_supported() else "float32"


def bf16_supported() -> bool:
    """A GPU of compute capability >= 8.0, or a CPU with AMX-BF16 / AVX512-BF16."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return capability >= (8, 0)
    return cpu_bf16() is not None


def cpu_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> str | None:
    """The CPU's bfloat16 instructions: ``AMX-BF16`` (matmuls ~3x float32), ``AVX512-BF16`` or None."""
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return None
    return "AMX-BF16" if " amx_bf16" in flags else "AVX512-BF16" if " avx512_bf16" in flags else None
