"""What a speed figure depends on: the CPU's model and its vector and matrix units (no TensorFlow import here,
so that `benchmarks/torch_gorriz_reference.py` can load this file alone)."""

import platform

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_tile", "amx_bf16")


def cpu_description():
    """`(model name, [the flags of CPU_FLAGS it has])` from /proc/cpuinfo (`platform.processor()` elsewhere)."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and name in ("", platform.machine(), platform.processor()):
                    name = value.strip()
                elif key.strip() == "flags":
                    flags = value.split()
                    break
    except OSError:
        pass
    return name, [flag for flag in CPU_FLAGS if flag in flags]
