"""How low-rank is a fine-tuning update, and which directions does it use? (notebook 07)

The LoRA paper's Section 7 asks three questions of an update Delta W = W_fine-tuned - W0:

* **Its spectrum.** If a few singular values hold most of its energy, a rank-r update can
  stand in for it. "Few" only means something against a baseline: :func:`random_like` gives a
  Gaussian matrix of the same shape and norm, whose energy is spread over every direction.
* **Its subspace.** The similarity phi(i, j) = ||U_i^T V_j||_F^2 / min(i, j) between the top-i
  directions of one update and the top-j of another is 1 when one subspace holds the other and
  about max(i, j) / n for random subspaces of R^n (:func:`subspace_similarity`).
* **Its relation to W0.** Projecting W0 onto the update's top directions, ||U^T W0 V||_F, and
  comparing with W0's own top directions and with random ones (:func:`random_directions`)
  shows whether the update amplifies directions W0 already emphasises, directions W0 has but
  does not emphasise, or directions unrelated to W0 (:func:`amplification`, the paper's Table 7).
"""

from __future__ import annotations

import numpy as np
import torch

from lora_teach.checks import check_instance, check_int, check_names
from lora_teach.linalg import as_float_array


def _matrix(values, name: str) -> np.ndarray:
    """A 2-D float64 array from a tensor, a numeric array or a nested list (checked once as a
    whole: these matrices have up to a million entries)."""
    if torch.is_tensor(values):
        values = values.detach().to(torch.float64).cpu().numpy()
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        matrix = values.astype(np.float64, copy=False)
        if not np.all(np.isfinite(matrix)):
            raise ValueError(f"{name} holds NaN or infinity")
    else:
        try:
            matrix = as_float_array(values)
        except (TypeError, ValueError) as problem:
            raise type(problem)(f"{name}: {problem}") from None
    if matrix.ndim != 2 or matrix.size == 0:
        raise ValueError(f"{name} must be a non-empty matrix (2-D), got shape {matrix.shape}")
    return matrix


def weight_updates(before: torch.nn.Module, after: torch.nn.Module, names) -> dict[str, np.ndarray]:
    """Delta W = after - before for each named weight (e.g. "layers.0.attention.W_q.weight")."""
    check_instance(before, "before", torch.nn.Module)
    check_instance(after, "after", torch.nn.Module)
    old, new = dict(before.named_parameters()), dict(after.named_parameters())
    names = list(check_names(names, "names"))
    updates = {}
    for name in names:
        if name not in old or name not in new:
            raise ValueError(f"{name!r} is not a parameter of both models")
        if old[name].shape != new[name].shape:
            raise ValueError(f"{name!r} has shape {tuple(old[name].shape)} before and "
                             f"{tuple(new[name].shape)} after")
        updates[name] = _matrix(new[name] - old[name], name)
    return updates


def singular_values(matrix) -> np.ndarray:
    """Singular values of a matrix, largest first."""
    return np.linalg.svd(_matrix(matrix, "matrix"), compute_uv=False)


def random_like(matrix, seed: int = 0) -> np.ndarray:
    """A Gaussian random matrix with the shape and Frobenius norm of ``matrix``: the baseline
    an update's spectrum is compared with (its energy is spread over all directions)."""
    matrix = _matrix(matrix, "matrix")
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    noise = rng.standard_normal(matrix.shape)
    return noise * (np.linalg.norm(matrix) / np.linalg.norm(noise))


def top_directions(matrix, r: int, side: str = "right") -> np.ndarray:
    """The top-r singular directions of a matrix as orthonormal columns: the left ones
    (columns of U, in the output space) or the right ones (rows of V^T, in the input space)."""
    matrix = _matrix(matrix, "matrix")
    r = check_int(r, "r", minimum=1, maximum=min(matrix.shape))
    if side not in ("left", "right"):
        raise ValueError(f"side must be 'left' or 'right', got {side!r}")
    u, _, vt = np.linalg.svd(matrix, full_matrices=False)
    return u[:, :r] if side == "left" else vt[:r].T


def subspace_similarity(first, second) -> np.ndarray:
    """phi[i-1, j-1] = ||U_i^T V_j||_F^2 / min(i, j) for the first i columns of ``first`` and
    the first j of ``second`` (both with orthonormal columns, e.g. from :func:`top_directions`).

    1 means one subspace lies inside the other; random subspaces of R^n give about max(i, j)/n.
    """
    u, v = _matrix(first, "first"), _matrix(second, "second")
    if u.shape[0] != v.shape[0]:
        raise ValueError(f"first has vectors of length {u.shape[0]}, second of {v.shape[0]}: "
                         f"they must live in the same space")
    for name, m in (("first", u), ("second", v)):
        if not np.allclose(m.T @ m, np.eye(m.shape[1]), atol=1e-6):
            raise ValueError(f"{name} must have orthonormal columns (use top_directions)")
    overlap = (u.T @ v) ** 2                        # overlap[a, b] = <u_a, v_b>^2
    cumulative = overlap.cumsum(0).cumsum(1)        # ||U_i^T V_j||_F^2 for every i, j
    i = np.arange(1, u.shape[1] + 1)[:, None]
    j = np.arange(1, v.shape[1] + 1)[None, :]
    return cumulative / np.minimum(i, j)


def random_directions(n: int, r: int, seed: int = 0) -> np.ndarray:
    """r random orthonormal directions of R^n, as columns (uniformly distributed: the top-r
    singular directions of a Gaussian random matrix have this distribution too)."""
    n = check_int(n, "n", minimum=1)
    r = check_int(r, "r", minimum=1, maximum=n)
    rng = np.random.default_rng(check_int(seed, "seed", minimum=0))
    q, upper = np.linalg.qr(rng.standard_normal((n, r)))
    return q * np.sign(np.diag(upper))   # the sign convention that makes q uniformly distributed


def amplification(update, weight, r: int, seed: int = 0, draws: int = 20) -> dict[str, float]:
    """The paper's Table 7 for one matrix: ||U^T W0 V||_F where U, V are the top-r left and right
    singular directions of the ``update``, of ``weight`` itself, and random directions (the mean
    over ``draws`` random pairs U, V, seeded by ``seed``); the norm of the update; and the
    amplification factor ||Delta W||_F / ||U^T W0 V||_F.

    Hu et al. (Section 7.3) find the update's directions project W0 far more strongly than
    random ones (W0 "already has" those features) yet far less than W0's own top directions
    (it does not emphasise them), with a large factor. For random directions of a d x k matrix,
    ||U^T W0 V||_F is about r / sqrt(d k) x ||W0||_F.
    """
    delta, w = _matrix(update, "update"), _matrix(weight, "weight")
    if delta.shape != w.shape:
        raise ValueError(f"update has shape {delta.shape} but weight has {w.shape}")
    r = check_int(r, "r", minimum=1, maximum=min(w.shape))
    draws = check_int(draws, "draws", minimum=1)
    seed = check_int(seed, "seed", minimum=0)

    def projected(source) -> float:
        u, _, vt = np.linalg.svd(source, full_matrices=False)   # one SVD for both sides
        return float(np.linalg.norm(u[:, :r].T @ w @ vt[:r].T))

    randomly = np.mean([np.linalg.norm(random_directions(w.shape[0], r, seed + 2 * i).T @ w
                                       @ random_directions(w.shape[1], r, seed + 2 * i + 1))
                        for i in range(draws)])
    on_update = projected(delta)
    return {"update norm": float(np.linalg.norm(delta)),
            "W0 on update directions": on_update,
            "W0 on its own directions": projected(w),
            "W0 on random directions": float(randomly),
            "amplification": float(np.linalg.norm(delta)) / on_update}
