"""Tests for lora_teach.intrinsic: exact start, what trains, Hadamard and Fastfood maths,
merging, training and refusals."""

import copy

import pytest
import torch
from helpers import tiny_ids
from torch import nn

from lora_teach import batching, intrinsic, lora, training
from lora_teach.model import ModelConfig, ModelM

HEAD = ["heads.ner"]


def subspaced(base, d=20, **kwargs):
    """A copy of ``base`` training in a d-dimensional subspace, plus the ner head."""
    model = copy.deepcopy(base)
    intrinsic.add_subspace(model, d, train_also=HEAD, **kwargs)
    return model


def moved(model, seed=0):
    """``model`` with a random, trained-like z."""
    with torch.no_grad():
        model.subspace.z.copy_(torch.randn(model.subspace.z.shape,
                                           generator=torch.Generator().manual_seed(seed)))
    return model


def projection_matrix(model):
    """P itself (D x d), built by projecting each unit vector: small cases only."""
    subspace = model.subspace
    return subspace.projection(torch.eye(subspace.z.numel())).T


def dense_hadamard(n):
    """H[i, j] = (-1)^(number of bits i and j share): a formula independent of Sylvester's."""
    return torch.tensor([[(-1.0) ** bin(i & j).count("1") for j in range(n)] for i in range(n)],
                        dtype=torch.float64)


@pytest.mark.parametrize("projection", intrinsic.PROJECTIONS)
@pytest.mark.parametrize("include", intrinsic.INCLUDE)
def test_zero_z_gives_exactly_the_pretrained_model(tiny_base, projection, include):
    model = subspaced(tiny_base, projection=projection, include=include)
    assert torch.equal(model.subspace.z, torch.zeros(20))
    with torch.no_grad():
        assert torch.equal(model("ner", tiny_ids()), tiny_base("ner", tiny_ids()))
        assert torch.equal(model.layers[1].attention.W_v.weight, tiny_base.layers[1].attention.W_v.weight)


def test_only_z_and_the_head_get_gradients(tiny_base):
    model = subspaced(tiny_base)
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["heads.ner.weight", "heads.ner.bias", "subspace.z"]
    model("ner", tiny_ids()).square().sum().backward()
    for name, parameter in model.named_parameters():
        assert (parameter.grad is not None) == (name in trainable), name
    assert model.subspace.z.grad.abs().sum() > 0
    # z is one parameter, shared by every projected tensor, so it is counted once
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == 20 + 16 * 7 + 7


def test_what_is_projected(tiny_base):
    encoder = [(name, p) for name, p in tiny_base.named_parameters() if not name.startswith("heads")]
    assert intrinsic.projected_parameter_count(tiny_base) == sum(p.numel() for _, p in encoder)
    assert intrinsic.projected_parameter_count(tiny_base, "matrices") == sum(
        p.numel() for _, p in encoder if p.dim() == 2)
    assert intrinsic.projected_names(tiny_base, "matrices")[:3] == [
        "token_embedding.weight", "position_embedding.weight", "segment_embedding.weight"]
    model = subspaced(tiny_base, d=7, include="matrices")
    assert model.subspace.z.numel() == 7
    # biases and LayerNorms stay as pretrained under include="matrices"
    with torch.no_grad():
        moved(model)
        assert torch.equal(model.layers[0].attention.W_q.bias, tiny_base.layers[0].attention.W_q.bias)
        assert not torch.equal(model.layers[0].attention.W_q.weight, tiny_base.layers[0].attention.W_q.weight)


@pytest.mark.parametrize("n", [1, 2, 8, 128, 256])
def test_hadamard_transform_matches_the_dense_matrix_and_inverts_itself(n):
    x = torch.randn(3, 2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    H = dense_hadamard(n)
    assert torch.equal(intrinsic.hadamard_matrix(n, torch.float64), H)
    for block in (2, 64):   # the textbook butterfly, and the course's larger blocks
        assert torch.allclose(intrinsic.hadamard_transform(x, block), x @ H.T)
        assert torch.allclose(intrinsic.hadamard_transform(intrinsic.hadamard_transform(x, block), block),
                              n * x)


def test_fastfood_is_the_product_of_its_factors():
    D, d, n = 50, 7, 64
    projection = intrinsic.FastfoodProjection(D, d, torch.Generator().manual_seed(3))
    H = dense_hadamard(n).float()
    Pi = torch.eye(n)[projection.permutation]          # (Pi x)_i = x[permutation[i]]
    V = H @ torch.diag(projection.gaussian) @ Pi @ H @ torch.diag(projection.signs)
    expected = V[:D, :d] / (projection.gaussian.norm() * D ** 0.5)
    assert torch.allclose(projection(torch.eye(d)).T, expected, atol=1e-5)


def test_fastfood_columns_have_about_unit_norm_and_depend_only_on_the_seed(tiny_base):
    model = subspaced(tiny_base, d=64)
    P = projection_matrix(model)
    assert P.shape == (intrinsic.projected_parameter_count(tiny_base), 64)
    norms = P.norm(dim=0)
    assert 0.8 < norms.min() and norms.max() < 1.2 and abs(norms.mean() - 1) < 0.05
    # nearly orthogonal columns, as for a Gaussian matrix
    assert (P.T @ P - torch.diag(norms ** 2)).abs().max() < 0.2
    assert torch.equal(projection_matrix(subspaced(tiny_base, d=64)), P)
    assert not torch.allclose(projection_matrix(subspaced(tiny_base, d=64, seed=1)), P)


def test_dense_projection_has_unit_columns_and_a_memory_limit(tiny_base, monkeypatch):
    P = projection_matrix(subspaced(tiny_base, d=30, projection="dense"))
    assert torch.allclose(P.norm(dim=0), torch.ones(30))
    monkeypatch.setattr(intrinsic, "DENSE_LIMIT_BYTES", 10_000)
    model = copy.deepcopy(tiny_base)
    with pytest.raises(ValueError, match=r"projection='dense' would store .* MB.*fastfood"):
        intrinsic.add_subspace(model, 30, projection="dense")
    assert not intrinsic.has_subspace(model)   # all or nothing


def test_the_shared_p_z_follows_every_change_of_z(tiny_base):
    model = subspaced(tiny_base)
    with torch.no_grad():
        before = model.layers[0].feed_forward.ffn_in.weight.clone()
        model.subspace.z.data.add_(1.0)     # an in-place change that autograd does not track
        after = model.layers[0].feed_forward.ffn_in.weight
    assert not torch.equal(before, after)
    # two forward and backward passes without an optimizer step: each has its own graph
    grads = []
    for _ in range(2):
        model.subspace.z.grad = None
        model("ner", tiny_ids()).sum().backward()
        grads.append(model.subspace.z.grad.clone())
    assert torch.equal(grads[0], grads[1])


def test_merged_copy_is_a_plain_model_m_with_the_same_outputs(tiny_base):
    model = moved(subspaced(tiny_base))
    model("ner", tiny_ids()).sum().backward()    # a cached P z with autograd history
    merged = intrinsic.merged_subspace_copy(model)
    assert type(merged) is ModelM and type(merged.layers[0].attention.W_q) is nn.Linear
    assert not intrinsic.has_subspace(merged)
    assert {name for name, _ in merged.named_parameters()} == {
        name for name, _ in tiny_base.named_parameters()}
    with torch.no_grad():
        assert torch.allclose(merged("ner", tiny_ids()), model("ner", tiny_ids()), atol=1e-6)
        assert not torch.allclose(merged("ner", tiny_ids()), tiny_base("ner", tiny_ids()))
    assert intrinsic.has_subspace(model)   # the original keeps its subspace
    with pytest.raises(ValueError, match="no subspace"):
        intrinsic.merged_subspace_copy(merged)


def test_training_moves_z_and_lowers_the_loss(small_task):
    splits, tokenizer = small_task
    data = batching.encode_task(splits["train"], tokenizer, "ner")
    torch.manual_seed(0)
    base = ModelM(ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_heads=2, d_ffn=32,
                              n_layers=1))
    model = copy.deepcopy(base)
    intrinsic.add_subspace(model, 50, train_also=HEAD)
    w0 = model.layers[0].attention.W_q.parametrizations.weight.original.clone()
    result = training.train_task(model, "ner", data, steps=40, lr=0.1, batch_size=16)
    assert result.trainable_parameters == 50 + 16 * 7 + 7
    assert sum(result.losses[-5:]) < sum(result.losses[:5])
    assert model.subspace.z.abs().sum() > 0
    assert torch.equal(model.layers[0].attention.W_q.parametrizations.weight.original, w0)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"d": 0}, ValueError, "d must be >= 1"),
    ({"d": 2.0}, TypeError, "d must be an integer"),
    ({"d": True}, TypeError, "d must be an integer"),
    ({"d": 10**6}, ValueError, "d must be <= D = "),
    ({"d": 5, "projection": "sparse"}, ValueError, "projection must be one of"),
    ({"d": 5, "include": "biases"}, ValueError, "include must be one of"),
    ({"d": 5, "seed": -1}, ValueError, "seed must be >= 0"),
    ({"d": 5, "seed": 0.5}, TypeError, "seed must be an integer"),
    ({"d": 5, "train_also": ["layers.0"]}, ValueError, "train_also names 'layers.0"),
    ({"d": 5, "train_also": ["heads.qa"]}, ValueError, "train_also names 'heads.qa'"),
])
def test_bad_arguments_name_the_argument_and_leave_the_model_alone(tiny_base, kwargs, error, match):
    model = copy.deepcopy(tiny_base)
    with pytest.raises(error, match=match):
        intrinsic.add_subspace(model, **kwargs)
    assert not intrinsic.has_subspace(model)
    assert all(p.requires_grad for p in model.parameters())


def test_refuses_other_models_and_second_subspaces(tiny_base):
    with pytest.raises(TypeError, match="model must be a ModelM"):
        intrinsic.add_subspace(nn.Linear(4, 4), 2)
    model = subspaced(tiny_base)
    with pytest.raises(ValueError, match="already has a subspace"):
        intrinsic.add_subspace(model, 5)
    with pytest.raises(ValueError, match="LoRA"):
        wrapped = copy.deepcopy(tiny_base)
        lora.add_lora(wrapped, ["W_q"], r=2)
        intrinsic.add_subspace(wrapped, 5)
    with pytest.raises(ValueError, match="no subspace"):
        intrinsic.merged_subspace_copy(tiny_base)
    with pytest.raises(ValueError, match="block must be a power of two"):
        intrinsic.hadamard_transform(torch.ones(8), block=3)
    with pytest.raises(ValueError, match="power-of-two length"):
        intrinsic.hadamard_transform(torch.ones(6))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        intrinsic.hadamard_transform([1.0, 2.0])



def test_a_deep_copy_has_its_own_subspace(tiny_base):
    model = subspaced(tiny_base)
    model("ner", tiny_ids()).sum().backward()    # the cached P z now has autograd history
    twin = copy.deepcopy(model)
    moved(twin)
    with torch.no_grad():
        assert torch.equal(model("ner", tiny_ids()), tiny_base("ner", tiny_ids()))
        assert not torch.allclose(twin("ner", tiny_ids()), tiny_base("ner", tiny_ids()))
    assert twin.layers[0].attention.W_q.parametrizations.weight[0].subspace is twin.subspace
