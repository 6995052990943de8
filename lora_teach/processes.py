"""How the course starts its worker processes (the parallel runs of notebooks 03-08).

A worker process must import torch (and, for the real model, transformers) before it can
train: seconds of work per process. Where the operating system allows it (Linux, macOS), the
course uses a *forkserver*: one fresh process imports those modules once, and every worker is
a copy of it, ready at once. Elsewhere (Windows) each worker is *spawned* and imports them
itself. Forking the notebook's own process is avoided: it is unsafe once torch has started
threads.

The forkserver is shared by every pool of one notebook, and it imports what the first pool
asks for, or what :func:`start_forkserver` asks for if that comes first: a notebook calls it
at the top of its first cell, so that the forkserver imports while the notebook does too.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor

from lora_teach.checks import check_int, check_names

# What the worker processes import before they start: for Model M's runs
# (lora_teach.experiments), and for the real model's too (lora_teach.real_runs). Both include
# torch's compiler, torch._dynamo, which torch imports when the first optimizer is made: about
# 2.5 s that every worker would otherwise pay again in its first run.
MODEL_M = ("lora_teach.experiments", "torch._dynamo")
REAL_MODEL = ("lora_teach.real_runs", "transformers", "transformers.models.bert.modeling_bert",
              "torch._dynamo")


def process_context(preload=("torch",)):
    """The multiprocessing context for a worker pool: a forkserver that has imported the
    modules in ``preload`` (if it is not running yet), or "spawn" where there is no
    forkserver. A name may repeat (``MODEL_M + REAL_MODEL``): it is imported once."""
    if isinstance(preload, (list, tuple)):
        preload = tuple(dict.fromkeys(preload))
    preload = list(check_names(preload, "preload"))
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(preload)
    return context


def one_thread_each() -> None:
    """Make this process, and the worker processes it starts later, compute on one thread
    each (torch, and numpy's BLAS): one busy thread per core, so that none of them waits.

    Why: numpy's BLAS splits a matrix product over every core. While the workers keep both
    cores busy, one half of such a product waits, spinning, for the other to get a core (in
    notebook 07, a cell that needs half a second of CPU took 6.7 s of it). BLAS reads
    its thread count once, when numpy is first imported: call this at the top of a notebook,
    before anything imports numpy or torch (torch is told directly if it is imported already).
    """
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def start_forkserver(preload) -> None:
    """Start the forkserver now, importing ``preload``: it imports on one core while the
    notebook goes on with its own imports on the other, and the worker pools started later
    find it ready (seconds sooner). Does nothing where there is no forkserver, or when it is
    running already."""
    context = process_context(preload)
    if context.get_start_method() == "forkserver":
        multiprocessing.forkserver.ensure_running()   # returns at once: the imports run there


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
