"""Tests for lora_teach.lora: exact start, merge/unmerge, gradients, rank, files, bad input."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

from lora_teach import linalg, lora
from lora_teach.model import ModelConfig, ModelM, count_parameters

CONFIG = ModelConfig(vocab_size=40, d_model=16, n_heads=2, d_ffn=32, n_layers=2, max_len=12)


@pytest.fixture
def base():
    torch.manual_seed(0)
    return ModelM(CONFIG).eval()


def trained_like(model):
    """Give every LoRA B random values, as training would."""
    with torch.no_grad():
        for layer in lora.lora_layers(model):
            layer.lora_B.normal_(std=0.1)
    return model


def test_zero_b_gives_exactly_the_base_model(base):
    model = copy.deepcopy(base)
    lora.add_lora(model, r=4, task="ner")
    ids = torch.randint(5, 40, (3, 8))
    with torch.no_grad():
        assert torch.equal(model("ner", ids), base("ner", ids))


def test_merged_and_unmerged_agree_and_unmerge_restores_w0(base):
    model = trained_like(copy.deepcopy(base))
    lora.add_lora(model, r=4, task="ner", alpha=8)
    trained_like(model)
    ids = torch.randint(5, 40, (3, 8))
    w0 = [layer.base.weight.clone() for layer in lora.lora_layers(model)]
    with torch.no_grad():
        unmerged = model("ner", ids)
        lora.merge_lora(model)
        merged = model("ner", ids)
        assert torch.allclose(merged, unmerged, atol=1e-5)
        assert not torch.equal(lora.lora_layers(model)[0].base.weight, w0[0])
        lora.unmerge_lora(model)
    for layer, weight in zip(lora.lora_layers(model), w0):
        assert torch.allclose(layer.base.weight, weight, atol=1e-6)


def test_gradients_reach_only_a_b_and_the_head(base):
    model = copy.deepcopy(base)
    trainable = lora.add_lora(model, r=4, task="fpb")
    assert all("lora_" in name or name.startswith("heads.fpb.") for name in trainable)
    model.train()
    model("fpb", torch.randint(5, 40, (2, 6))).sum().backward()
    for name, parameter in model.named_parameters():
        if name in trainable:
            continue
        assert parameter.grad is None, name
    first = lora.lora_layers(model)[0]
    assert first.lora_B.grad.abs().sum() > 0
    assert first.lora_A.grad.abs().sum() == 0   # B = 0 at step 0


def test_update_has_rank_at_most_r(base):
    model = copy.deepcopy(base)
    lora.add_lora(model, r=3, task="ner")
    trained_like(model)
    for layer in lora.lora_layers(model):
        update = layer.delta_weight().detach().numpy()
        tol = 1e-5 * linalg.singular_values(update)[0]   # float32 rounding, not float64's
        assert linalg.numerical_rank(update, tol=tol) == 3


def test_trainable_count_is_r_times_in_plus_out_per_target(base):
    model = copy.deepcopy(base)
    lora.add_lora(model, r=4, task="ner", targets=("W_q", "W_v", "ffn_in"))
    expected = CONFIG.n_layers * (2 * 4 * (16 + 16) + 4 * (16 + 32)) + 16 * 7 + 7
    assert count_parameters(model, trainable_only=True) == expected


def test_disable_gives_back_base_and_refuses_while_merged(base):
    model = trained_like(copy.deepcopy(base))
    lora.add_lora(model, r=4, task="ner")
    trained_like(model)
    ids = torch.randint(5, 40, (2, 5))
    lora.set_lora_enabled(model, False)
    with torch.no_grad():
        assert torch.equal(model("mlm", ids), base("mlm", ids))
    lora.set_lora_enabled(model, True)
    lora.merge_lora(model)
    with pytest.raises(ValueError, match="unmerge LoRA before switching it off"):
        lora.set_lora_enabled(model, False)
    with pytest.raises(ValueError, match="unmerge LoRA before saving"):
        lora.lora_state(model)


def test_files_round_trip_swap_and_check_base(base, tmp_path):
    model = copy.deepcopy(base)
    lora.add_lora(model, r=4, task="ner")
    trained_like(model)
    size = lora.save_lora(model, tmp_path / "ner.pt")
    assert size < 4 * count_parameters(base)   # less than the raw bytes of a full copy
    fresh = copy.deepcopy(base)
    lora.add_lora(fresh, r=4, task="fpb")
    lora.load_lora(fresh, tmp_path / "ner.pt")
    ids = torch.randint(5, 40, (2, 5))
    with torch.no_grad():
        assert torch.equal(fresh("ner", ids), model("ner", ids))
    torch.manual_seed(5)
    other = ModelM(CONFIG)
    lora.add_lora(other, r=4, task="ner")
    with pytest.raises(ValueError, match="another base model"):
        lora.load_lora(other, tmp_path / "ner.pt")
    wider = copy.deepcopy(base)
    lora.add_lora(wider, r=2, task="ner")
    with pytest.raises(ValueError, match=r"lora_A' has shape \(4, 16\) in the file but \(2, 16\)"):
        lora.load_lora(wider, tmp_path / "ner.pt")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"r": 0}, ValueError, "r must be between 1 and min"),
    ({"r": 17}, ValueError, "r must be between 1 and min"),
    ({"r": 2.0}, TypeError, "r must be an integer"),
    ({"r": 4, "targets": ("W_x",)}, ValueError, r"unknown LoRA target\(s\) \['W_x'\]"),
    ({"r": 4, "task": "pos"}, ValueError, "unknown task 'pos'"),
])
def test_bad_requests_are_refused(base, kwargs, error, message):
    kwargs = {"task": "ner", **kwargs}
    with pytest.raises(error, match=message):
        lora.add_lora(copy.deepcopy(base), **kwargs)


def test_wrapping_twice_and_wrong_types_are_refused(base):
    model = copy.deepcopy(base)
    lora.add_lora(model, r=4, task="ner")
    with pytest.raises(ValueError, match="already wrapped"):
        lora.add_lora(model, r=4, task="ner")
    with pytest.raises(TypeError, match="wraps an nn.Linear"):
        lora.LoRALinear(nn.Conv1d(2, 2, 1), r=1)
    with pytest.raises(TypeError, match="expected a ModelM"):
        lora.add_lora(nn.Linear(2, 2), r=1, task="ner")
    assert np.isclose(lora.LoRALinear(nn.Linear(8, 8), r=4, alpha=8).scaling, 2.0)
