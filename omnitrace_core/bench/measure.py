"""Peak-memory measurement: resident set size on CPU (sampled), allocator peak on GPU."""

from __future__ import annotations

import ctypes
import gc
import threading
import time

import psutil
import torch


def release_memory() -> None:
    """Collect garbage and hand freed heap back to the OS, so the next baseline is clean."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


class PeakMemory:
    """Context manager measuring the peak memory a block adds above its starting level.

    On CUDA it reads ``torch.cuda.max_memory_allocated``; on CPU a thread samples the process's
    RSS every ``interval`` seconds (torch releases the GIL inside ops, so sampling continues).
    """

    def __init__(self, device: torch.device, interval: float = 0.002) -> None:
        self.cuda = device.type == "cuda"
        self.interval = interval
        self.process = psutil.Process()
        self.base = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self) -> "PeakMemory":
        release_memory()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = self.peak = self.process.memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = max(self.peak, self.process.memory_info().rss)
            self._stop.set()
            self._thread.join()

    @property
    def added_mb(self) -> float:
        return max(0, self.peak - self.base) / 2**20


def available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return int(psutil.virtual_memory().available)
