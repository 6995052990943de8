"""Tests for lora_teach.adapters: identity at zero, what is trained, saving and loading."""

import copy

import pytest
import torch
from helpers import TINY as CONFIG
from helpers import count_parameters, perturb_trainable, tiny_ids

from lora_teach import adapters
from lora_teach.costs import saved_bytes
from lora_teach.model import ModelM


@pytest.fixture
def base(tiny_base):
    return tiny_base


def test_adapter_has_2md_plus_d_plus_m_parameters():
    adapter = adapters.BottleneckAdapter(16, 4)
    assert count_parameters(adapter) == 2 * 4 * 16 + 16 + 4


def test_zero_output_projection_gives_exactly_the_pretrained_function(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, train_also=["heads.ner"])
    ids = tiny_ids(3, 9)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, adapters.BottleneckAdapter):
                module.up.weight.zero_()
                module.up.bias.zero_()
        assert torch.equal(model("ner", ids), base("ner", ids))
        assert torch.equal(model("mlm", ids), base("mlm", ids))


def test_near_identity_initialisation_changes_outputs_only_slightly(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, train_also=["heads.ner"])
    ids = tiny_ids(2, 8)
    with torch.no_grad():
        assert torch.allclose(model("ner", ids), base("ner", ids), atol=1e-3)


def test_only_adapters_layernorms_and_task_head_are_trainable(base):
    model = copy.deepcopy(base)
    trainable = adapters.add_adapters(model, bottleneck=4, train_also=["heads.fpb"])
    assert all(("adapter" in n) or ("norm" in n and n.startswith("layers.")) or n.startswith("heads.fpb.")
               for n in trainable)
    n_adapters = CONFIG.n_layers * 2 * (2 * 4 * 16 + 16 + 4)
    n_norms = CONFIG.n_layers * 2 * 2 * 16
    n_head = 16 * 3 + 3
    assert count_parameters(model, trainable_only=True) == n_adapters + n_norms + n_head
    assert count_parameters(model) == count_parameters(base) + n_adapters


def test_gradients_pass_through_frozen_layers_to_the_adapters(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, train_also=["heads.fpb"])
    model.train()
    model("fpb", tiny_ids(2, 6)).sum().backward()
    first_adapter = model.layers[0].attention_adapter.down.weight
    assert first_adapter.grad is not None and first_adapter.grad.abs().sum() > 0
    assert model.layers[0].attention.W_q.weight.grad is None


def test_save_and_load_round_trip_and_swap_tasks(base, tmp_path):
    trained = copy.deepcopy(base)
    adapters.add_adapters(trained, bottleneck=4, train_also=["heads.ner"])
    perturb_trainable(trained)
    size = adapters.save_adapters(trained, tmp_path / "ner.pt")
    assert size < saved_bytes(base.state_dict())   # smaller than a full copy
    fresh = copy.deepcopy(base)
    adapters.add_adapters(fresh, bottleneck=4, train_also=["heads.ner"])
    adapters.load_adapters(fresh, tmp_path / "ner.pt")
    ids = tiny_ids(2, 7)
    with torch.no_grad():
        assert torch.equal(fresh("ner", ids), trained("ner", ids))


def test_loading_refuses_other_base_and_other_shapes(base, tmp_path):
    trained = copy.deepcopy(base)
    adapters.add_adapters(trained, bottleneck=4, train_also=["heads.ner"])
    adapters.save_adapters(trained, tmp_path / "ner.pt")
    torch.manual_seed(1)
    other = ModelM(CONFIG)
    adapters.add_adapters(other, bottleneck=4, train_also=["heads.ner"])
    with pytest.raises(ValueError, match="another base model"):
        adapters.load_adapters(other, tmp_path / "ner.pt")
    wider = copy.deepcopy(base)
    adapters.add_adapters(wider, bottleneck=8, train_also=["heads.ner"])
    with pytest.raises(ValueError, match="bottleneck is 4 in the file but 8 in this model"):
        adapters.load_adapters(wider, tmp_path / "ner.pt")
    bare = copy.deepcopy(base)
    with pytest.raises(ValueError, match="the file adapts"):
        adapters.load_adapters(bare, tmp_path / "ner.pt")
    one_place = copy.deepcopy(base)
    adapters.add_adapters(one_place, bottleneck=4, places=("output",))
    with pytest.raises(ValueError, match=r"the file adapts \['layers.0.attention_adapter'"):
        adapters.load_adapters(one_place, tmp_path / "ner.pt")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"bottleneck": 0}, ValueError, "bottleneck must be >= 1"),
    ({"bottleneck": 17}, ValueError, "bottleneck must be <= 16"),
    ({"bottleneck": 2.5}, TypeError, "bottleneck must be an integer"),
    ({"bottleneck": 4, "train_also": ["heads.pos"]}, ValueError, "but no parameter lies in a module"),
    ({"bottleneck": 4, "places": ("ffn",)}, ValueError, r"unknown places \['ffn'\]"),
    ({"bottleneck": 4, "places": "output"}, TypeError, "write \\('output',\\)"),
    ({"bottleneck": 4, "places": ("output", "output")}, ValueError, "more than once"),
    ({"bottleneck": 4, "seed": 1.5}, TypeError, "seed must be an integer"),
])
def test_bad_requests_are_refused_and_leave_the_model_unchanged(base, kwargs, error, message):
    model = copy.deepcopy(base)
    with pytest.raises(error, match=message):
        adapters.add_adapters(model, **kwargs)
    assert not adapters.named_adapters(model)
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("train_also, overlap", [
    (["layers.1"], "layers.1.attention_adapter"), (["layers"], "layers.0.attention_adapter"),
    (["heads.ner", "layers.0.output_norm"], "layers.0.output_norm"),
])
def test_train_also_overlapping_what_adapters_train_is_refused(base, train_also, overlap):
    # regression: train_also=["layers.1"] unfroze layer 1's pretrained W_q, W_k, ... as well
    model = copy.deepcopy(base)
    with pytest.raises(ValueError, match=f"train_also names '.*', which overlaps '{overlap}'"):
        adapters.add_adapters(model, bottleneck=4, train_also=train_also)
    assert not adapters.named_adapters(model) and all(p.requires_grad for p in model.parameters())


def test_adding_twice_is_refused_and_removal_restores_identity(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, train_also=["heads.ner"])
    with pytest.raises(ValueError, match="already has adapters"):
        adapters.add_adapters(model, bottleneck=4, train_also=["heads.ner"])
    adapters.remove_adapters(model)
    assert not adapters.named_adapters(model)
    with pytest.raises(TypeError, match="model must be a ModelM"):
        adapters.add_adapters(torch.nn.Linear(2, 2), bottleneck=1)


def test_saves_refuse_to_overwrite_and_need_adapters(base, tmp_path):
    # regression: the adapter save used to overwrite existing files without asking
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, train_also=["heads.ner"])
    adapters.save_adapters(model, tmp_path / "ner.pt")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        adapters.save_adapters(model, tmp_path / "ner.pt")
    adapters.save_adapters(model, tmp_path / "ner.pt", overwrite=True)
    with pytest.raises(ValueError, match="no adapters"):
        adapters.save_adapters(copy.deepcopy(base), tmp_path / "bare.pt")


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_adapters_follow_the_base_dtype(base, dtype):
    # regression: adapters were float32 whatever the base used
    model = copy.deepcopy(base).to(dtype)
    adapters.add_adapters(model, bottleneck=4, train_also=["heads.ner"])
    assert all(p.dtype == dtype for p in model.parameters())
    model("ner", tiny_ids())


def test_new_adapters_take_the_mode_of_the_model(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4)
    assert not any(adapter.training for _, adapter in adapters.named_adapters(model))
