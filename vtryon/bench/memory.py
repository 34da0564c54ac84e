"""Peak memory readings for the benchmark: process RSS (Linux high-water mark, reset per
measurement) and, on CUDA, the caching allocator's max allocated and max reserved bytes.
The allocator's figures never include the CUDA context itself (a few hundred MB that
nvidia-smi would show), so they compare across drivers and GPUs."""

from __future__ import annotations

from typing import Any

from vtryon.pipeline import peak_rss_bytes


def reset_peak_rss() -> bool:
    """Reset the kernel's RSS high-water mark; False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def rss_mb() -> float:
    return peak_rss_bytes() / 2**20


class DevicePeaks:
    """Around a block: reset, then read, the allocator's peaks on a CUDA device (else nothing)."""

    def __init__(self, device: str) -> None:
        self.cuda = device.startswith("cuda")

    def reset(self) -> None:
        reset_peak_rss()
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()

    def read(self) -> dict[str, Any]:
        out: dict[str, Any] = {"peak_rss_mb": round(rss_mb(), 1)}
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            out["cuda_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            out["cuda_max_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
        return out
