"""Low-rank factorisations, the truncated SVD and what they save.

A d x k matrix of rank r is a product of a d x r and an r x k matrix, which stores r(d + k)
numbers instead of dk. For a matrix that is only *close* to rank r, the truncated SVD gives
the best rank-r approximation (Eckart-Young-Mirsky), and its error is set by the singular
values that were dropped. These are the facts LoRA's update Delta W = B A is built on.
"""

from __future__ import annotations

import numpy as np

from lora_teach.checks import check_int, check_real
from lora_teach.linalg import as_float_array


def _check_rank(r, d: int, k: int) -> int:
    r = check_int(r, "r", minimum=1)
    if r > min(d, k):
        raise ValueError(f"r = {r} is larger than min(d, k) = {min(d, k)} for a {d}x{k} matrix; "
                         f"no matrix of that shape has rank above {min(d, k)}")
    return r


def dense_parameters(d: int, k: int) -> int:
    """Numbers stored by a dense d x k matrix: d * k."""
    return check_int(d, "d", minimum=1) * check_int(k, "k", minimum=1)


def factorized_parameters(d: int, k: int, r: int) -> int:
    """Numbers stored by a rank-r factorisation B A (B is d x r, A is r x k): r (d + k).

    The one place the course writes this formula: LoRA's trainable count, the storage of a
    truncated SVD and the diagrams all use it.
    """
    d, k = check_int(d, "d", minimum=1), check_int(k, "k", minimum=1)
    return _check_rank(r, d, k) * (d + k)


def break_even_rank(d: int, k: int) -> float:
    """The rank at which a factorisation stops saving: r(d + k) = dk  <=>  r = dk / (d + k).

    A rank-r factorisation stores fewer numbers than the dense matrix only when r is below
    this; for a square d x d matrix it is d / 2.
    """
    d, k = check_int(d, "d", minimum=1), check_int(k, "k", minimum=1)
    return d * k / (d + k)


def storage_fraction(d: int, k: int, r: int) -> float:
    """Numbers stored by a rank-r factorisation as a fraction of the dense matrix: r(d+k)/(dk)."""
    return factorized_parameters(d, k, r) / dense_parameters(d, k)


def truncated_svd(values, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The r largest singular triplets: U_r (d x r), sigma_r (r,), Vt_r (r x k)."""
    matrix = as_float_array(values)
    r = _check_rank(r, *matrix.shape)
    u, sigma, vt = np.linalg.svd(matrix, full_matrices=False)
    return u[:, :r], sigma[:r], vt[:r, :]


def low_rank_approximation(values, r: int) -> np.ndarray:
    """The best rank-r approximation U_r diag(sigma_r) Vt_r of the matrix (Eckart-Young)."""
    u, sigma, vt = truncated_svd(values, r)
    return (u * sigma) @ vt


def best_rank_r_factors(values, r: int) -> tuple[np.ndarray, np.ndarray]:
    """Factors B (d x r) and A (r x k) with B @ A the best rank-r approximation.

    Named as in the LoRA paper (Delta W = B A). B = U_r diag(sigma_r), A = Vt_r.
    """
    u, sigma, vt = truncated_svd(values, r)
    return u * sigma, vt


def _check_singular_values(singular_values) -> np.ndarray:
    try:
        sigma = np.asarray(singular_values, dtype=float)
    except (TypeError, ValueError) as problem:
        raise TypeError(f"singular_values must be real numbers ({problem})") from None
    if sigma.ndim != 1 or sigma.size == 0:
        raise ValueError(f"singular_values must be a non-empty 1-D sequence, got shape {sigma.shape}")
    if not np.all(np.isfinite(sigma)):
        raise ValueError("singular_values must be finite; got NaN or infinity")
    if np.any(sigma < 0) or np.any(np.diff(sigma) > 0):
        raise ValueError("singular_values must be >= 0 and sorted largest first")
    return sigma


def eckart_young_error(singular_values, r: int, norm: str = "fro") -> float:
    """Error of the best rank-r approximation, from the singular values it discards.

    Frobenius norm: sqrt(sigma_{r+1}^2 + ... + sigma_n^2). Spectral norm ("2"): sigma_{r+1}.
    """
    sigma = _check_singular_values(singular_values)
    r = check_int(r, "r", minimum=0)
    if r > sigma.size:
        raise ValueError(f"r = {r} exceeds the number of singular values ({sigma.size})")
    rest = sigma[r:]
    if norm == "fro":
        return float(np.sqrt(np.sum(rest ** 2)))
    if norm == "2":
        return float(rest[0]) if rest.size else 0.0
    raise ValueError(f"norm must be 'fro' or '2', got {norm!r}")


def rank_for_energy(singular_values, fraction: float) -> int:
    """Smallest r whose top-r singular values keep at least ``fraction`` of the energy."""
    sigma = _check_singular_values(singular_values)
    check_real(fraction, "fraction", minimum=0, maximum=1, include_minimum=False)
    if not np.any(sigma > 0):
        raise ValueError("every singular value is zero: the zero matrix has no energy to keep")
    cumulative = np.cumsum(sigma ** 2) / np.sum(sigma ** 2)
    return int(np.searchsorted(cumulative, fraction - 1e-12) + 1)
