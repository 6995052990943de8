"""How the course starts its worker processes (the parallel runs of notebooks 03-08).

A worker process must import torch (and, for the real model, transformers) before it can
train: seconds of work per process. Where the operating system allows it (Linux, macOS), the
course uses a *forkserver*: one fresh process imports those modules once, and every worker is
a copy of it, ready at once. Elsewhere (Windows) each worker is *spawned* and imports them
itself. Forking the notebook's own process is avoided: it is unsafe once torch has started
threads.

The forkserver is shared by every pool of one notebook, and it imports what the first pool
asks for: a notebook that uses both pools starts the one with the longer list first.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from lora_teach.checks import check_int, check_names


def process_context(preload=("torch",)):
    """The multiprocessing context for a worker pool: a forkserver that has imported the
    modules in ``preload`` (if it is not running yet), or "spawn" where there is no
    forkserver."""
    preload = list(check_names(preload, "preload"))
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context


def start_in_background(pool: ProcessPoolExecutor, workers: int) -> None:
    """Make ``pool`` start its ``workers`` processes without making the caller wait: starting
    one waits until the forkserver has imported its modules, so a helper thread does it."""
    check_int(workers, "workers", minimum=1)
    threading.Thread(target=_wake, args=(pool, workers), daemon=True).start()


def _wake(pool: ProcessPoolExecutor, workers: int) -> None:
    for _ in range(workers):   # a trivial job makes each process start
        try:
            pool.submit(time.sleep, 0)
        except RuntimeError:   # the pool was shut down meanwhile: there is nothing left to start
            return
