"""Tests for lora_teach.processes: the worker processes' start method."""

import multiprocessing
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from lora_teach import processes


def test_the_context_is_a_forkserver_where_there_is_one():
    context = processes.process_context(("json",))
    expected = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    assert context.get_start_method() == expected


def test_names_repeated_by_model_m_plus_real_model_are_accepted():
    context = processes.process_context(processes.MODEL_M + processes.REAL_MODEL)
    assert context.get_start_method() in ("forkserver", "spawn")


def test_pools_started_in_the_background_run_work(tmp_path):
    pool = ProcessPoolExecutor(2, mp_context=processes.process_context(("json",)))
    try:
        processes.start_in_background(pool, 2)
        assert pool.submit(sum, [1, 2, 3]).result(timeout=60) == 6
    finally:
        pool.shutdown()


def test_a_pool_shut_down_before_it_started_is_left_alone():
    pool = ProcessPoolExecutor(2, mp_context=processes.process_context(("json",)))
    pool.shutdown()
    processes._wake(pool, 2)   # no error: nothing to start


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="preload"):
        processes.process_context("torch")
    with pytest.raises(ValueError, match="workers"):
        processes.start_in_background(None, 0)


def test_the_forkserver_started_early_imports_what_was_asked_first():
    # in a fresh interpreter, since a process has one forkserver and this one may have started it
    script = """
import sys
from concurrent.futures import ProcessPoolExecutor
from lora_teach import processes
processes.start_forkserver(("colorsys",))
processes.start_forkserver(("json",))   # running already: no effect
pool = ProcessPoolExecutor(1, mp_context=processes.process_context(("json",)))
imported = pool.submit(eval, "'colorsys' in __import__('sys').modules").result(timeout=60)
pool.shutdown()
print(imported)
"""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this system")
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "True"


def test_start_forkserver_names_bad_input():
    with pytest.raises(TypeError, match="preload"):
        processes.start_forkserver("torch")
    with pytest.raises(ValueError, match="preload"):
        processes.start_forkserver(())


def test_one_thread_each_covers_numpy_torch_and_the_workers_to_come():
    # in a fresh interpreter: it changes the environment of the process that calls it
    script = """
import os
from lora_teach import processes
processes.one_thread_each()
import torch
print(os.environ["OPENBLAS_NUM_THREADS"], os.environ["OMP_NUM_THREADS"], torch.get_num_threads())
"""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == ["1", "1", "1"]


def test_one_thread_each_tells_torch_if_it_is_imported_already():
    script = """
import torch
torch.set_num_threads(2)
from lora_teach import processes
processes.one_thread_each()
print(torch.get_num_threads())
"""
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "1"


def test_workers_of_model_m_make_their_first_optimizer_without_importing():
    # torch imports its compiler (seconds) when the first optimizer is made: the forkserver of
    # MODEL_M has done it, so a worker's first run does not (a fresh interpreter, as above)
    script = """
from concurrent.futures import ProcessPoolExecutor
from lora_teach import processes
pool = ProcessPoolExecutor(1, mp_context=processes.process_context(processes.MODEL_M))
first_optimizer = ("[sys := __import__('sys'), before := len(sys.modules), torch := __import__('torch'),"
                   " torch.optim.AdamW([torch.zeros(1, requires_grad=True)]), len(sys.modules) - before][-1]")
print(pool.submit(eval, first_optimizer).result(timeout=120))
pool.shutdown()
"""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        pytest.skip("no forkserver on this system")
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.strip() == "0"
