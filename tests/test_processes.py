"""Tests for lora_teach.processes: the worker processes' start method."""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import pytest

from lora_teach import processes


def test_the_context_is_a_forkserver_where_there_is_one():
    context = processes.process_context(("json",))
    expected = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    assert context.get_start_method() == expected


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
