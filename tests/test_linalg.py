"""Tests for lora_teach.linalg: exact rank, rref, C R, numerical rank, and input checking."""

import numpy as np
import pytest
import sympy
from helpers import NOTES_W
from hypothesis import given, settings
from hypothesis import strategies as st

from lora_teach import linalg

# --- the notes' example -----------------------------------------------------

def test_printed_example_has_rank_three_not_two():
    assert linalg.exact_rank(NOTES_W) == 3
    assert linalg.pivot_columns(NOTES_W) == [0, 1, 2]


def test_dependency_coefficients_rebuild_each_dependent_column():
    coefficients = linalg.dependency_coefficients(NOTES_W)
    assert set(coefficients) == {3, 4}
    assert coefficients[4] == {0: 1, 1: 0, 2: 2}  # C5 = C1 + 2 C3 in the printed matrix
    for target, combination in coefficients.items():
        assert all(p < target for p in combination)
        residual = linalg.relation_residual(NOTES_W, target, combination)
        assert residual == sympy.zeros(4, 1)


def test_relation_residual_names_the_rows_where_a_claim_breaks():
    # The notes claim C3 = 2 C1; rows 3 and 4 disagree (12 vs 6 and 16 vs 8).
    residual = linalg.relation_residual(NOTES_W, 2, {0: 2, 1: 0})
    assert list(residual) == [0, 0, 6, 8]
    # C4 = C1 + C2 does hold.
    assert list(linalg.relation_residual(NOTES_W, 3, {0: 1, 1: 1})) == [0, 0, 0, 0]


def test_format_relation_reads_like_the_notes():
    assert linalg.format_relation(3, {0: 1, 1: 1}) == "C4 = 1·C1 + 1·C2"
    assert linalg.format_relation(0, {}) == "C1 = 0"
    with pytest.raises(TypeError, match="combination must be a dict"):
        linalg.format_relation(3, [1, 1])


def test_cr_factorization_of_example_rebuilds_it_exactly():
    factors = linalg.cr_factorization(NOTES_W)
    assert factors.C.shape == (4, 3) and factors.R.shape == (3, 5)
    assert factors.product() == sympy.Matrix(NOTES_W)
    assert factors.rank == 3


def test_cr_factorization_of_zero_matrix_is_refused():
    with pytest.raises(ValueError, match="zero matrix"):
        linalg.cr_factorization([[0, 0], [0, 0]])


# --- properties on random integer matrices ------------------------------------

small_matrices = st.integers(1, 5).flatmap(
    lambda rows: st.integers(1, 5).flatmap(
        lambda cols: st.lists(st.lists(st.integers(-4, 4), min_size=cols, max_size=cols),
                              min_size=rows, max_size=rows)))


@settings(max_examples=60, deadline=None)
@given(small_matrices)
def test_cr_rebuilds_matrix_and_rank_equals_pivot_count(rows):
    rank = linalg.exact_rank(rows)
    assert rank == len(linalg.pivot_columns(rows))
    assert rank == linalg.exact_rank(np.array(rows).T.tolist())  # column rank = row rank
    if rank == 0:
        return
    factors = linalg.cr_factorization(rows)
    assert factors.product() == sympy.Matrix(rows)
    assert linalg.exact_rank(factors.product()) == rank
    assert linalg.exact_rank(factors.C) == rank == linalg.exact_rank(factors.R)


@settings(max_examples=60, deadline=None)
@given(small_matrices)
def test_every_dependent_column_is_rebuilt_from_earlier_pivots(rows):
    for target, combination in linalg.dependency_coefficients(rows).items():
        assert linalg.relation_residual(rows, target, combination) == sympy.zeros(len(rows), 1)


@settings(max_examples=40, deadline=None)
@given(small_matrices)
def test_numerical_rank_agrees_with_exact_rank_on_integer_matrices(rows):
    assert linalg.numerical_rank(rows) == linalg.exact_rank(rows)


# --- numerical rank ------------------------------------------------------------

def test_noise_makes_exact_rank_full_but_tolerance_recovers_it():
    corrected = np.array([[1, 7], [2, 10], [3, 15], [4, 12]]) @ np.array(
        [[1, 0, 2, 1, 1], [0, 1, 0, 1, 2]])
    noisy = corrected + 1e-9 * np.random.default_rng(0).standard_normal(corrected.shape)
    assert linalg.exact_rank(corrected) == 2
    assert linalg.exact_rank(noisy) == 4
    assert linalg.numerical_rank(noisy) == 4           # default tolerance is far below 1e-9
    assert linalg.numerical_rank(noisy, tol=1e-6) == 2


def test_singular_values_are_sorted_and_match_frobenius_norm():
    sigma = linalg.singular_values(NOTES_W)
    assert np.all(np.diff(sigma) <= 0)
    assert np.isclose(np.sum(sigma ** 2), np.sum(np.array(NOTES_W, float) ** 2))


def test_default_tolerance_follows_numpy_convention():
    a = np.array(NOTES_W, float)
    expected = np.linalg.svd(a, compute_uv=False)[0] * 5 * np.finfo(float).eps
    assert np.isclose(linalg.default_tolerance(a), expected)


@pytest.mark.parametrize("tol, error", [(-1.0, ValueError), (float("nan"), ValueError),
                                        ("small", TypeError), (True, TypeError)])
def test_numerical_rank_rejects_bad_tolerance(tol, error):
    with pytest.raises(error, match="tol"):
        linalg.numerical_rank(NOTES_W, tol=tol)


# --- input checking --------------------------------------------------------------

def test_floats_become_their_exact_binary_value():
    exact = linalg.as_exact_matrix([[0.1]])
    assert exact[0, 0] == sympy.Rational(3602879701896397, 36028797018963968)
    assert exact[0, 0] != sympy.Rational(1, 10)


def test_accepts_numpy_and_sympy_input():
    assert linalg.exact_rank(np.array(NOTES_W)) == 3
    assert linalg.exact_rank(sympy.Matrix(NOTES_W)) == 3
    assert linalg.as_float_array(sympy.Matrix([[sympy.Rational(1, 2)]]))[0, 0] == 0.5


@pytest.mark.parametrize("bad, error, message", [
    ([1, 2, 3], ValueError, "row 0 is a int"),
    (np.array([1, 2, 3]), ValueError, "1 dimension"),
    (np.zeros((2, 2, 2)), ValueError, "3 dimension"),
    ([[1, 2], [3]], ValueError, "ragged rows: row 0 has 2 entries but row 1 has 1"),
    ([], ValueError, "non-empty"),
    ([[]], ValueError, "non-empty"),
    ([[1, "x"]], TypeError, r"entry \(0, 1\) is 'x'"),
    ([[1, None]], TypeError, r"entry \(0, 1\)"),
    ([[True, 1]], TypeError, r"entry \(0, 0\)"),
    ([[1, float("inf")]], ValueError, "finite"),
    ([[1, sympy.Symbol("x")]], TypeError, "not a real number"),
    ("not a matrix", TypeError, "got str"),
])
def test_bad_input_is_named(bad, error, message):
    for function in (linalg.exact_rank, linalg.numerical_rank):
        with pytest.raises(error, match=message):
            function(bad)


def test_column_name_and_residual_check_indices():
    assert linalg.column_name(0) == "C1"
    with pytest.raises(ValueError, match=">= 0"):
        linalg.column_name(-1)
    with pytest.raises(TypeError, match="integer"):
        linalg.column_name(1.0)
    with pytest.raises(ValueError, match="out of range"):
        linalg.relation_residual(NOTES_W, 5, {0: 1})
