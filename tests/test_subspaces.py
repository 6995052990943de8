"""Tests for lora_teach.subspaces: update spectra, the random baseline, phi and amplification."""

import numpy as np
import pytest
import torch
from helpers import TINY

from lora_teach import subspaces
from lora_teach.model import ModelM


def orthonormal(n, k, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, k)))
    return q


def test_weight_updates_are_after_minus_before():
    before = ModelM(TINY)
    after = ModelM(TINY)
    name = "layers.0.attention.W_q.weight"
    updates = subspaces.weight_updates(before, after, [name])
    expected = (after.get_parameter(name) - before.get_parameter(name)).detach().double().numpy()
    assert np.allclose(updates[name], expected)
    with pytest.raises(ValueError, match="not a parameter"):
        subspaces.weight_updates(before, after, ["nope.weight"])
    with pytest.raises(ValueError, match="empty"):
        subspaces.weight_updates(before, after, [])
    with pytest.raises(TypeError, match="before"):
        subspaces.weight_updates("model", after, [name])


def test_a_rank_two_update_has_two_nonzero_singular_values():
    rng = np.random.default_rng(0)
    update = rng.standard_normal((12, 2)) @ rng.standard_normal((2, 9))
    sigma = subspaces.singular_values(update)
    assert sigma.shape == (9,) and np.all(sigma[:2] > 1e-3) and np.all(sigma[2:] < 1e-10)
    assert np.all(np.diff(sigma) <= 0)


def test_the_random_baseline_keeps_shape_and_norm_and_spreads_energy():
    update = np.outer(np.arange(1.0, 31.0), np.ones(20))          # rank 1
    baseline = subspaces.random_like(update, seed=3)
    assert baseline.shape == update.shape
    assert np.isclose(np.linalg.norm(baseline), np.linalg.norm(update))
    sigma = subspaces.singular_values(baseline)
    assert (sigma[0] ** 2) / np.sum(sigma ** 2) < 0.3                # no direction dominates
    assert np.array_equal(baseline, subspaces.random_like(update, seed=3))
    assert not np.array_equal(baseline, subspaces.random_like(update, seed=4))


def test_top_directions_are_orthonormal_and_span_the_update():
    u, v = orthonormal(10, 3, 0), orthonormal(7, 3, 1)
    update = u @ np.diag([5.0, 3.0, 1.0]) @ v.T
    left, right = subspaces.top_directions(update, 2, "left"), subspaces.top_directions(update, 2, "right")
    assert left.shape == (10, 2) and right.shape == (7, 2)
    assert np.allclose(left.T @ left, np.eye(2)) and np.allclose(right.T @ right, np.eye(2))
    assert np.allclose(np.abs(left.T @ u[:, :2]), np.eye(2), atol=1e-8)
    with pytest.raises(ValueError, match="side"):
        subspaces.top_directions(update, 2, "up")
    with pytest.raises(ValueError, match="r must be <= 7"):
        subspaces.top_directions(update, 8)


def test_subspace_similarity_is_one_inside_and_about_k_over_n_at_random():
    u = orthonormal(200, 8, 0)
    same = subspaces.subspace_similarity(u, u)
    assert same.shape == (8, 8) and np.allclose(np.diag(same), 1.0)
    assert np.allclose(same[0, 1:], 1.0)                 # u_1 lies inside span(u_1..u_j)
    assert np.isclose(same[1, 0], 1.0)
    random = subspaces.subspace_similarity(u, orthonormal(200, 8, 1))
    assert random[-1, -1] < 0.2                          # expected 8 / 200 = 0.04
    # a hand-computed entry: phi(2, 3) = ||U_2^T V_3||_F^2 / 2
    v = orthonormal(200, 8, 2)
    assert np.isclose(subspaces.subspace_similarity(u, v)[1, 2], np.sum((u[:, :2].T @ v[:, :3]) ** 2) / 2)


def test_subspace_similarity_refuses_mismatched_or_non_orthonormal_input():
    with pytest.raises(ValueError, match="same space"):
        subspaces.subspace_similarity(orthonormal(10, 2, 0), orthonormal(11, 2, 0))
    with pytest.raises(ValueError, match="orthonormal"):
        subspaces.subspace_similarity(np.ones((10, 2)), orthonormal(10, 2, 0))
    with pytest.raises(ValueError, match="2-D"):
        subspaces.subspace_similarity(np.ones(10), orthonormal(10, 2, 0))


def test_amplification_of_an_update_along_weak_directions_of_w0():
    u, s, vt = np.linalg.svd(np.random.default_rng(0).standard_normal((16, 16)))
    weight = u @ np.diag(np.linspace(10, 0.1, 16)) @ vt
    weak = 2.0 * np.outer(u[:, -1], vt[-1])                  # W0's weakest direction, norm 2
    result = subspaces.amplification(weak, weight, r=1)
    assert np.isclose(result["update norm"], 2.0)
    assert np.isclose(result["W0 on update directions"], 0.1)
    assert np.isclose(result["W0 on its own directions"], 10.0)
    assert np.isclose(result["amplification"], 20.0)
    strong = subspaces.amplification(2.0 * np.outer(u[:, 0], vt[0]), weight, r=1)
    assert np.isclose(strong["amplification"], 0.2)
    with pytest.raises(ValueError, match="shape"):
        subspaces.amplification(np.ones((3, 4)), np.ones((4, 3)), r=1)
    with pytest.raises(TypeError, match="r must be an integer"):
        subspaces.amplification(weak, weight, r=1.5)


def test_random_directions_are_orthonormal_seeded_and_uniform():
    q = subspaces.random_directions(50, 4, seed=3)
    assert q.shape == (50, 4) and np.allclose(q.T @ q, np.eye(4))
    assert np.array_equal(q, subspaces.random_directions(50, 4, seed=3))
    assert not np.allclose(q, subspaces.random_directions(50, 4, seed=4))
    # uniform directions: each coordinate's square averages 1/n over many draws
    squares = np.mean([subspaces.random_directions(10, 1, seed=s)[:, 0] ** 2 for s in range(2000)], axis=0)
    assert np.allclose(squares, 0.1, atol=0.02)
    with pytest.raises(ValueError, match="r must be <= 5"):
        subspaces.random_directions(5, 6)
    with pytest.raises(ValueError, match="n must be >= 1"):
        subspaces.random_directions(0, 1)


def test_amplification_random_baseline_is_about_r_over_sqrt_dk_of_the_norm():
    weight = np.random.default_rng(1).standard_normal((200, 300))
    update = np.random.default_rng(2).standard_normal((200, 300))
    result = subspaces.amplification(update, weight, r=10, draws=30)
    expected = 10 / np.sqrt(200 * 300) * np.linalg.norm(weight)
    assert abs(result["W0 on random directions"] / expected - 1) < 0.1
    # the mean over draws is seeded: the same seed gives the same number
    assert result == subspaces.amplification(update, weight, r=10, draws=30)
    with pytest.raises(ValueError, match="draws must be >= 1"):
        subspaces.amplification(update, weight, r=10, draws=0)


def test_tensors_are_accepted_and_bad_values_named():
    assert subspaces.singular_values(torch.eye(3)).tolist() == [1.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="matrix"):
        subspaces.singular_values(np.ones((2, 2, 2)))


def test_large_matrices_are_read_at_once_and_non_finite_ones_refused():
    update = np.random.default_rng(0).standard_normal((1536, 384)).astype(np.float32)
    assert subspaces.singular_values(update).shape == (384,)
    update[3, 4] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        subspaces.singular_values(update)
    with pytest.raises(ValueError, match="2-D"):
        subspaces.singular_values(np.zeros((0, 3)))
    assert subspaces.singular_values([[3, 0], [0, 4]]).tolist() == [4.0, 3.0]
