"""Tests for lora_teach.adapters: identity at zero, what is trained, saving and loading."""

import copy

import pytest
import torch

from lora_teach import adapters
from lora_teach.model import ModelConfig, ModelM, count_parameters

CONFIG = ModelConfig(vocab_size=40, d_model=16, n_heads=2, d_ffn=32, n_layers=2, max_len=12)


@pytest.fixture
def base():
    torch.manual_seed(0)
    return ModelM(CONFIG).eval()


def test_adapter_has_2md_plus_d_plus_m_parameters():
    adapter = adapters.BottleneckAdapter(16, 4)
    assert count_parameters(adapter) == 2 * 4 * 16 + 16 + 4


def test_zero_output_projection_gives_exactly_the_pretrained_function(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, task="ner")
    ids = torch.randint(5, 40, (3, 9))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, adapters.BottleneckAdapter):
                module.up.weight.zero_()
                module.up.bias.zero_()
        assert torch.equal(model("ner", ids), base("ner", ids))
        assert torch.equal(model("mlm", ids), base("mlm", ids))


def test_near_identity_initialisation_changes_outputs_only_slightly(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, task="ner")
    ids = torch.randint(5, 40, (2, 8))
    with torch.no_grad():
        assert torch.allclose(model("ner", ids), base("ner", ids), atol=1e-3)


def test_only_adapters_layernorms_and_task_head_are_trainable(base):
    model = copy.deepcopy(base)
    trainable = adapters.add_adapters(model, bottleneck=4, task="fpb")
    assert all(("adapter" in n) or ("norm" in n and n.startswith("layers.")) or n.startswith("heads.fpb.")
               for n in trainable)
    n_adapters = CONFIG.n_layers * 2 * (2 * 4 * 16 + 16 + 4)
    n_norms = CONFIG.n_layers * 2 * 2 * 16
    n_head = 16 * 3 + 3
    assert count_parameters(model, trainable_only=True) == n_adapters + n_norms + n_head
    assert count_parameters(model) == count_parameters(base) + n_adapters


def test_gradients_pass_through_frozen_layers_to_the_adapters(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, task="fpb")
    model.train()
    model("fpb", torch.randint(5, 40, (2, 6))).sum().backward()
    first_adapter = model.layers[0].attention_adapter.down.weight
    assert first_adapter.grad is not None and first_adapter.grad.abs().sum() > 0
    assert model.layers[0].attention.W_q.weight.grad is None


def test_save_and_load_round_trip_and_swap_tasks(base, tmp_path):
    trained = copy.deepcopy(base)
    adapters.add_adapters(trained, bottleneck=4, task="ner")
    with torch.no_grad():
        for p in trained.parameters():
            if p.requires_grad:
                p.add_(0.1)
    size = adapters.save_adapters(trained, tmp_path / "ner.pt")
    assert size < 0.5 * 4 * count_parameters(base)
    fresh = copy.deepcopy(base)
    adapters.add_adapters(fresh, bottleneck=4, task="ner")
    adapters.load_adapters(fresh, tmp_path / "ner.pt")
    ids = torch.randint(5, 40, (2, 7))
    with torch.no_grad():
        assert torch.equal(fresh("ner", ids), trained("ner", ids))


def test_loading_refuses_other_base_and_other_shapes(base, tmp_path):
    trained = copy.deepcopy(base)
    adapters.add_adapters(trained, bottleneck=4, task="ner")
    adapters.save_adapters(trained, tmp_path / "ner.pt")
    torch.manual_seed(1)
    other = ModelM(CONFIG)
    adapters.add_adapters(other, bottleneck=4, task="ner")
    with pytest.raises(ValueError, match="another base model"):
        adapters.load_adapters(other, tmp_path / "ner.pt")
    wider = copy.deepcopy(base)
    adapters.add_adapters(wider, bottleneck=8, task="ner")
    with pytest.raises(ValueError, match=r"'layers.0.attention_adapter.down.weight' has shape \(4, 16\)"):
        adapters.load_adapters(wider, tmp_path / "ner.pt")
    bare = copy.deepcopy(base)
    with pytest.raises(ValueError, match="does not have"):
        adapters.load_adapters(bare, tmp_path / "ner.pt")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"bottleneck": 0, "task": "ner"}, ValueError, "between 1 and d_model = 16"),
    ({"bottleneck": 17, "task": "ner"}, ValueError, "between 1 and d_model = 16"),
    ({"bottleneck": 2.5, "task": "ner"}, TypeError, "bottleneck must be an integer"),
    ({"bottleneck": 4, "task": "pos"}, ValueError, "unknown task 'pos'"),
    ({"bottleneck": 4, "task": "ner", "places": ("ffn",)}, ValueError, r"unknown adapter place\(s\) \['ffn'\]"),
])
def test_bad_requests_are_refused(base, kwargs, error, message):
    with pytest.raises(error, match=message):
        adapters.add_adapters(copy.deepcopy(base), **kwargs)


def test_adding_twice_is_refused_and_removal_restores_identity(base):
    model = copy.deepcopy(base)
    adapters.add_adapters(model, bottleneck=4, task="ner")
    with pytest.raises(ValueError, match="already has adapters"):
        adapters.add_adapters(model, bottleneck=4, task="ner")
    adapters.remove_adapters(model)
    assert not adapters.has_adapters(model)
    with pytest.raises(TypeError, match="expected a ModelM"):
        adapters.add_adapters(torch.nn.Linear(2, 2), bottleneck=1, task="ner")
