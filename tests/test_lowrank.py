"""Tests for lora_teach.lowrank: truncated SVD, Eckart-Young error, break-even rank."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_teach import linalg, lowrank


def test_break_even_rank_of_the_notes_example_and_square_matrices():
    assert lowrank.break_even_rank(4, 5) == pytest.approx(20 / 9)
    assert lowrank.break_even_rank(768, 768) == 384
    assert lowrank.storage_fraction(4, 5, 2) == pytest.approx(18 / 20)
    assert lowrank.storage_fraction(768, 768, 8) == pytest.approx(2 * 8 / 768)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 30), st.integers(2, 30), st.integers(0, 2**31))
def test_truncated_svd_error_matches_eckart_young(d, k, seed):
    matrix = np.random.default_rng(seed).standard_normal((d, k))
    sigma = linalg.singular_values(matrix)
    for r in range(1, min(d, k) + 1):
        approx = lowrank.low_rank_approximation(matrix, r)
        assert linalg.numerical_rank(approx) <= r
        assert np.linalg.norm(matrix - approx) == pytest.approx(
            lowrank.eckart_young_error(sigma, r), abs=1e-9)
        assert np.linalg.norm(matrix - approx, 2) == pytest.approx(
            lowrank.eckart_young_error(sigma, r, norm="2"), abs=1e-9)


def test_svd_beats_another_rank_r_approximation():
    matrix = np.random.default_rng(0).standard_normal((20, 15))
    columns = matrix[:, :3]
    projection = columns @ np.linalg.lstsq(columns, matrix, rcond=None)[0]
    assert np.linalg.norm(matrix - lowrank.low_rank_approximation(matrix, 3)) < \
        np.linalg.norm(matrix - projection)


def test_best_rank_r_factors_rebuild_a_rank_r_matrix_exactly():
    rng = np.random.default_rng(1)
    update = rng.standard_normal((12, 3)) @ rng.standard_normal((3, 9))
    b, a = lowrank.best_rank_r_factors(update, 3)
    assert b.shape == (12, 3) and a.shape == (3, 9)
    assert np.allclose(b @ a, update, atol=1e-12)


def test_energy_helpers():
    sigma = np.array([3.0, 2.0, 1.0])
    assert lowrank.rank_for_energy(sigma, 9 / 14) == 1
    assert lowrank.rank_for_energy(sigma, 0.9) == 2
    assert lowrank.rank_for_energy(sigma, 1.0) == 3
    assert lowrank.eckart_young_error(sigma, 0) == pytest.approx(np.sqrt(14))


@pytest.mark.parametrize("call, error, message", [
    (lambda: lowrank.break_even_rank(0, 5), ValueError, "d must be >= 1"),
    (lambda: lowrank.break_even_rank(4.0, 5), TypeError, "d must be an integer"),
    (lambda: lowrank.storage_fraction(4, 5, 5), ValueError, "larger than min"),
    (lambda: lowrank.truncated_svd([[1, 2], [3, 4]], 0), ValueError, "r must be >= 1"),
    (lambda: lowrank.truncated_svd([1, 2], 1), ValueError, "row 0"),
    (lambda: lowrank.eckart_young_error([1, 2], 1), ValueError, "sorted"),
    (lambda: lowrank.eckart_young_error([2, 1], 3), ValueError, "exceeds"),
    (lambda: lowrank.eckart_young_error([2, 1], 1, norm="max"), ValueError, "norm"),
    (lambda: lowrank.rank_for_energy([2, 1], 1.5), ValueError, "fraction"),
    (lambda: lowrank.rank_for_energy([2, 1], "all"), TypeError, "fraction"),
    (lambda: lowrank.rank_for_energy([], 0.9), ValueError, "non-empty"),
    # regressions: NaN or inf singular values, r beyond the spectrum, r = 0.0 or False,
    # and 0/0 on an all-zero spectrum were accepted
    (lambda: lowrank.eckart_young_error([2, float("nan")], 1), ValueError, "finite"),
    (lambda: lowrank.rank_for_energy([float("inf"), 1], 0.9), ValueError, "finite"),
    (lambda: lowrank.eckart_young_error([2, 1], 0.0), TypeError, "r must be an integer"),
    (lambda: lowrank.eckart_young_error([2, 1], False), TypeError, "r must be an integer"),
    (lambda: lowrank.eckart_young_error([2, 1], -1), ValueError, "r must be >= 0"),
    (lambda: lowrank.rank_for_energy([0.0, 0.0], 0.9), ValueError, "every singular value is zero"),
    (lambda: lowrank.rank_for_energy(["a", "b"], 0.9), TypeError, "real numbers"),
    (lambda: lowrank.truncated_svd([[1, 2], [3, 4]], 3), ValueError, "larger than min"),
    (lambda: lowrank.factorized_parameters(4, 5, 0.0), TypeError, "r must be an integer"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
