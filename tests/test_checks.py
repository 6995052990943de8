"""Tests for lora_teach.checks: each check names the argument and what was wrong."""

from fractions import Fraction

import numpy as np
import pytest

from lora_teach import checks


def test_check_int_accepts_python_and_numpy_integers_only():
    assert checks.check_int(3, "r") == 3 and type(checks.check_int(np.int64(3), "r")) is int
    for bad in (True, 3.0, "3", None, Fraction(3, 1)):
        with pytest.raises(TypeError, match="r must be an integer"):
            checks.check_int(bad, "r")
    with pytest.raises(ValueError, match="r must be >= 1, got 0"):
        checks.check_int(0, "r", minimum=1)
    with pytest.raises(ValueError, match="r must be <= 4, got 5"):
        checks.check_int(5, "r", maximum=4)


def test_check_real_refuses_nan_inf_bools_and_respects_open_bounds():
    assert checks.check_real(Fraction(1, 2), "lr") == 0.5
    for bad, error in ((float("nan"), ValueError), (float("inf"), ValueError),
                       (True, TypeError), ("0.1", TypeError), (1j, TypeError)):
        with pytest.raises(error, match="lr must be"):
            checks.check_real(bad, "lr")
    with pytest.raises(ValueError, match="lr must be > 0, got 0.0"):
        checks.check_real(0, "lr", minimum=0, include_minimum=False)
    assert checks.check_real(0, "lr", minimum=0) == 0.0
    with pytest.raises(ValueError, match="p must be < 1"):
        checks.check_real(1, "p", maximum=1, include_maximum=False)


def test_check_bool_refuses_truthy_strings():
    assert checks.check_bool(False, "enabled") is False
    for bad in ("False", 0, None):
        with pytest.raises(TypeError, match="enabled must be True or False"):
            checks.check_bool(bad, "enabled")


def test_check_names_refuses_a_string_repeats_and_unknown_names():
    assert checks.check_names(["a", "b"], "targets") == ("a", "b")
    with pytest.raises(TypeError, match=r"write \('W_q',\) for one name"):
        checks.check_names("W_q", "targets")
    with pytest.raises(ValueError, match="empty"):
        checks.check_names([], "targets")
    with pytest.raises(ValueError, match=r"names \['a'\] more than once"):
        checks.check_names(["a", "b", "a"], "targets")
    with pytest.raises(TypeError, match="must hold strings"):
        checks.check_names(["a", 1], "targets")
    with pytest.raises(ValueError, match=r"unknown targets \['c'\]; choose from \['a', 'b'\]"):
        checks.check_names(["c"], "targets", ["a", "b"])
    with pytest.raises(TypeError, match="list or tuple"):
        checks.check_names(3, "targets")


def test_check_choice_and_instance_name_the_expected_values():
    assert checks.check_choice("ner", "task", ("ner", "fpb")) == "ner"
    with pytest.raises(ValueError, match=r"task must be one of \['ner', 'fpb'\], got 'pos'"):
        checks.check_choice("pos", "task", ("ner", "fpb"))
    import random

    import torch
    with pytest.raises(TypeError, match="rng must be a random.Random, got int"):
        checks.check_instance(0, "rng", random.Random)
    with pytest.raises(TypeError, match="layer must be a torch.nn.Linear or torch.Tensor"):
        checks.check_instance(0, "layer", (torch.nn.Linear, torch.Tensor))


def test_check_sequence_takes_any_iterable_but_a_string():
    assert checks.check_sequence(("a", "b"), "tokens") == ["a", "b"]
    assert checks.check_sequence((w for w in "ab"), "tokens") == ["a", "b"]   # a generator
    assert checks.check_sequence([], "tokens") == []
    with pytest.raises(TypeError, match="tokens must be a list of words, got the string 'profit'"):
        checks.check_sequence("profit", "tokens", "words")
    for bad, kind in ((None, "NoneType"), (3, "int"), (object(), "object")):
        with pytest.raises(TypeError, match=f"tags must be a list of items, got {kind}"):
            checks.check_sequence(bad, "tags")


def test_check_array_gives_a_float_array_of_the_dimension_asked_for():
    array = checks.check_array([[1, 2], [3, 4]], "weights", 2)
    assert array.dtype == np.float64 and array.shape == (2, 2)
    assert checks.check_array(np.arange(3), "values", 1).tolist() == [0.0, 1.0, 2.0]
    for bad in ("text", None, object(), [[1, None]]):
        with pytest.raises(TypeError, match="phi must be a 2-D array of numbers"):
            checks.check_array(bad, "phi", 2)
    with pytest.raises(ValueError, match="phi must be a 2-D array of numbers; numpy cannot read it"):
        checks.check_array([[1, 2], [3]], "phi", 2)   # rows of different lengths
    for bad, shape in ((-1, r"\(\)"), ([1, 2], r"\(2,\)"), ([[]], r"\(1, 0\)")):
        with pytest.raises(ValueError, match=f"phi must be a non-empty 2-D array, got shape {shape}"):
            checks.check_array(bad, "phi", 2)
    with pytest.raises(TypeError, match="ndim must be an integer"):
        checks.check_array([1.0], "values", "1")
