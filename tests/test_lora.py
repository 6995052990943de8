"""Tests for lora_teach.lora: exact start, merge/unmerge, gradients, rank, files, any model."""

import copy

import numpy as np
import pytest
import torch
from helpers import TINY, count_parameters, perturb_trainable, tiny_ids
from torch import nn

from lora_teach import linalg, lora
from lora_teach.model import ModelM

QV = ("W_q", "W_v")


def wrapped(base, r=4, targets=QV, head="heads.ner", **kwargs):
    """A copy of ``base`` with LoRA, its B trained-like (nonzero)."""
    model = copy.deepcopy(base)
    lora.add_lora(model, targets, r, train_also=[head], **kwargs)
    return perturb_trainable(model)


def test_zero_b_gives_exactly_the_base_model(tiny_base):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, QV, r=4, train_also=["heads.ner"])
    with torch.no_grad():
        assert torch.equal(model("ner", tiny_ids()), tiny_base("ner", tiny_ids()))


def test_default_alpha_is_fixed_and_independent_of_r():
    assert lora.DEFAULT_ALPHA == 8
    for r in (1, 8, 32):
        layer = lora.LoRALinear(nn.Linear(64, 64), r)
        assert layer.alpha == 8 and layer.scaling == 8 / r


def test_merged_and_unmerged_agree_and_unmerge_restores_w0(tiny_base):
    model = wrapped(tiny_base, alpha=16)
    w0 = [layer.base.weight.clone() for layer in lora.lora_layers(model)]
    with torch.no_grad():
        unmerged = model("ner", tiny_ids())
        lora.merge_lora(model)
        merged = model("ner", tiny_ids())
        assert torch.allclose(merged, unmerged, atol=1e-5)
        assert not torch.equal(lora.lora_layers(model)[0].base.weight, w0[0])
        lora.unmerge_lora(model)
    for layer, weight in zip(lora.lora_layers(model), w0):
        assert torch.allclose(layer.base.weight, weight, atol=1e-6)


def test_merged_copy_has_no_wrappers_and_leaves_the_original_alone(tiny_base):
    model = wrapped(tiny_base)
    deployed = lora.merged_copy(model)
    assert not lora.lora_layers(deployed)
    assert isinstance(deployed.layers[0].attention.W_q, nn.Linear)
    assert lora.lora_layers(model) and not any(layer.merged for layer in lora.lora_layers(model))
    with torch.no_grad():
        assert torch.allclose(deployed("ner", tiny_ids()), model("ner", tiny_ids()), atol=1e-5)
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora.merged_copy(tiny_base)


def test_training_a_merged_layer_is_refused(tiny_base):
    # regression: a merged model used to train only its head, silently
    model = wrapped(tiny_base)
    lora.merge_lora(model)
    model.train()
    with pytest.raises(RuntimeError, match="unmerge_lora"):
        model("ner", tiny_ids())
    model.eval()
    model("ner", tiny_ids())   # inference on a merged model is what merging is for


def test_merging_a_switched_off_layer_is_an_error(tiny_base):
    # regression: merge() on a disabled layer used to do nothing, silently
    model = wrapped(tiny_base)
    lora.set_lora_enabled(model, False)
    with pytest.raises(ValueError, match="switched off"):
        lora.merge_lora(model)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_merging_a_non_finite_update_is_refused_and_leaves_w0_intact(tiny_base, bad):
    # regression: a NaN in B was merged into W0, and unmerging left NaN in W0 for good
    model = wrapped(tiny_base)
    broken = model.layers[1].attention.W_v
    with torch.no_grad():
        broken.lora_B[0, 0] = bad
    weights = {name: p.clone() for name, p in model.named_parameters()}
    for merge in (lora.merge_lora, lora.merged_copy):
        with pytest.raises(ValueError, match=r"layers\.1\.attention\.W_v: merging would write \d+ NaN"):
            merge(model)
    with pytest.raises(ValueError, match="W0 is left unchanged"):
        broken.merge()
    assert not any(layer.merged for layer in lora.lora_layers(model))   # all or nothing
    for name, parameter in model.named_parameters():   # W0 untouched (and B still holds its bad value)
        torch.testing.assert_close(parameter, weights[name], rtol=0, atol=0, equal_nan=True)


def test_new_layers_take_the_mode_of_the_model(tiny_base):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, QV, r=4, dropout=0.5)
    assert not any(layer.training for layer in lora.lora_layers(model))
    with torch.no_grad():   # no dropout in eval mode: the same output twice
        assert torch.equal(model("ner", tiny_ids()), model("ner", tiny_ids()))


def test_gradients_reach_only_a_b_and_the_head(tiny_base):
    model = copy.deepcopy(tiny_base)
    trainable = lora.add_lora(model, QV, r=4, train_also=["heads.fpb"])
    assert all(".lora_" in name or name.startswith("heads.fpb.") for name in trainable)
    model.train()
    model("fpb", tiny_ids(2, 6)).sum().backward()
    for name, parameter in model.named_parameters():
        if name not in trainable:
            assert parameter.grad is None, name
    first = lora.lora_layers(model)[0]
    assert first.lora_B.grad.abs().sum() > 0
    assert first.lora_A.grad.abs().sum() == 0   # B = 0 at step 0


def test_update_has_rank_at_most_r(tiny_base):
    model = wrapped(tiny_base, r=3)
    for layer in lora.lora_layers(model):
        update = layer.delta_weight().detach().numpy()
        tol = 1e-5 * linalg.singular_values(update)[0]   # float32 rounding, not float64's
        assert linalg.numerical_rank(update, tol=tol) == 3


def test_trainable_count_is_r_times_in_plus_out_per_target(tiny_base):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, ("W_q", "W_v", "ffn_in"), r=4, train_also=["heads.ner"])
    expected = TINY.n_layers * (2 * 4 * (16 + 16) + 4 * (16 + 32)) + 16 * 7 + 7
    assert count_parameters(model, trainable_only=True) == expected


def test_targets_match_by_name_ending_as_in_peft(tiny_base):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, ("layers.1.attention.W_q", "ffn_out"), r=2)
    names = [name for name, _ in lora.named_lora_layers(model)]
    assert names == ["layers.0.feed_forward.ffn_out", "layers.1.attention.W_q",
                     "layers.1.feed_forward.ffn_out"]


def test_disable_gives_back_base_and_refuses_while_merged(tiny_base):
    model = wrapped(tiny_base)
    lora.set_lora_enabled(model, False)
    with torch.no_grad():
        assert torch.equal(model("mlm", tiny_ids()), tiny_base("mlm", tiny_ids()))
    lora.set_lora_enabled(model, True)
    lora.merge_lora(model)
    with pytest.raises(ValueError, match="unmerge LoRA before switching it off"):
        lora.set_lora_enabled(model, False)
    with pytest.raises(ValueError, match="unmerge LoRA before saving"):
        lora.save_lora(model, "unused.pt")


def test_set_enabled_refuses_a_string(tiny_base):
    # regression: set_lora_enabled(m, 'False') used to switch LoRA on ('False' is truthy)
    model = wrapped(tiny_base)
    with pytest.raises(TypeError, match="enabled must be True or False"):
        lora.set_lora_enabled(model, "False")


def test_files_round_trip_swap_and_check_base(tiny_base, tmp_path):
    model = wrapped(tiny_base)
    size = lora.save_lora(model, tmp_path / "ner.pt")
    assert size < 4 * count_parameters(tiny_base)   # less than the raw bytes of a full copy
    fresh = copy.deepcopy(tiny_base)
    lora.add_lora(fresh, QV, r=4, train_also=["heads.fpb"])
    lora.load_lora(fresh, tmp_path / "ner.pt")
    with torch.no_grad():
        assert torch.equal(fresh("ner", tiny_ids()), model("ner", tiny_ids()))
    torch.manual_seed(5)
    other = ModelM(TINY)
    lora.add_lora(other, QV, r=4)
    with pytest.raises(ValueError, match="another base model"):
        lora.load_lora(other, tmp_path / "ner.pt")


def test_a_base_with_other_layernorms_is_refused(tiny_base, tmp_path):
    # regression: the fingerprint used to skip every tensor with "norm" in its name
    lora.save_lora(wrapped(tiny_base), tmp_path / "ner.pt")
    other = copy.deepcopy(tiny_base)
    with torch.no_grad():
        other.layers[1].output_norm.weight.mul_(1.5)
    lora.add_lora(other, QV, r=4)
    with pytest.raises(ValueError, match=r"layers\.1\.output_norm\.weight'\] differ"):
        lora.load_lora(other, tmp_path / "ner.pt")


@pytest.mark.parametrize("setup, message", [
    ({"r": 2}, "r is 4 in the file but 2 in this model"),
    ({"alpha": 16}, "alpha is 8.0 in the file but 16.0 in this model"),
    ({"dropout": 0.1}, "dropout is 0.0 in the file but 0.1 in this model"),
    ({"targets": ("W_q",)}, r"the file adapts \['layers.0.attention.W_v'"),
    ({"targets": ("W_q", "W_v", "W_k")}, r"this model adapts \['layers.0.attention.W_k'"),
])
def test_a_model_set_up_differently_is_refused_naming_the_difference(tiny_base, tmp_path, setup,
                                                                       message):
    # regression: files did not record r, alpha, targets or dropout, and loaded anyway
    lora.save_lora(wrapped(tiny_base), tmp_path / "ner.pt")
    kwargs = {"targets": QV, "r": 4, **setup}
    other = copy.deepcopy(tiny_base)
    lora.add_lora(other, **kwargs)
    with pytest.raises(ValueError, match=message):
        lora.load_lora(other, tmp_path / "ner.pt")


def test_merge_then_unmerge_gets_an_honest_message(tiny_base, tmp_path):
    # regression: the message used to claim "trained on another base model"
    model = wrapped(tiny_base)
    lora.save_lora(model, tmp_path / "ner.pt")
    lora.merge_lora(model)
    lora.unmerge_lora(model)
    with pytest.raises(ValueError, match="last bits, as after merging and unmerging"):
        lora.load_lora(model, tmp_path / "ner.pt")


def test_saving_a_model_without_lora_is_an_error(tiny_base, tmp_path):
    # regression: save_lora on a model without LoRA wrote the whole model
    with pytest.raises(ValueError, match="no LoRA layers"):
        lora.save_lora(tiny_base, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_an_adapter_file_is_not_a_lora_file(tiny_base, tmp_path):
    from lora_teach import adapters
    model = copy.deepcopy(tiny_base)
    adapters.add_adapters(model, 4, train_also=["heads.ner"])
    adapters.save_adapters(model, tmp_path / "a.pt")
    with pytest.raises(ValueError, match="holds a adapters task, not a lora one"):
        lora.load_lora(wrapped(tiny_base), tmp_path / "a.pt")


def test_saves_refuse_to_overwrite_unless_asked(tiny_base, tmp_path):
    # regression: save_lora used to overwrite an existing file without asking
    path = tmp_path / "ner.pt"
    lora.save_lora(wrapped(tiny_base), path)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        lora.save_lora(wrapped(tiny_base, r=2), path)
    assert path.read_bytes() == before
    lora.save_lora(wrapped(tiny_base, r=2), path, overwrite=True)
    assert path.read_bytes() != before


@pytest.mark.parametrize("targets, r", [(("W_q", "W_q"), 4), (("W_q", "ffn_in"), 17),
                                        (("W_q", "nowhere"), 4), (("W_q", "attention"), 4)])
def test_a_failed_add_lora_leaves_the_model_unchanged_and_a_retry_works(tiny_base, targets, r):
    # regression: a later bad target left the model half-wrapped, with nothing frozen
    model = copy.deepcopy(tiny_base)
    before = {name: p.requires_grad for name, p in model.named_parameters()}
    with pytest.raises((ValueError, TypeError)):
        lora.add_lora(model, targets, r)
    assert not lora.lora_layers(model)
    assert {name: p.requires_grad for name, p in model.named_parameters()} == before
    lora.add_lora(model, QV, r=4)
    assert len(lora.lora_layers(model)) == 2 * TINY.n_layers


@pytest.mark.parametrize("train_also", [["layers.0.attention"], ["layers"], ["layers.1.attention.W_v"],
                                        ["heads.ner", "layers.0.attention.W_q.weight"]])
def test_train_also_overlapping_a_target_is_refused(tiny_base, train_also):
    # regression: train_also=["layers.0.attention"] made the frozen W0 of W_q and W_v trainable again
    model = copy.deepcopy(tiny_base)
    with pytest.raises(ValueError, match=r"train_also names '.*', which overlaps 'layers\.[01]"):
        lora.add_lora(model, QV, r=4, train_also=train_also)
    assert not lora.lora_layers(model) and all(p.requires_grad for p in model.parameters())
    trainable = lora.add_lora(model, QV, r=4, train_also=["heads.ner", "layers.0.attention.W_k"])
    assert not any(".base." in name for name in trainable)


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_lora_follows_the_base_dtype(tiny_base, tmp_path, dtype):
    # regression: A and B were float32 whatever the base, so float64 and bfloat16 bases failed
    model = copy.deepcopy(tiny_base).to(dtype)
    lora.add_lora(model, QV, r=4, train_also=["heads.ner"])
    layer = lora.lora_layers(model)[0]
    assert layer.lora_A.dtype == layer.lora_B.dtype == dtype
    perturb_trainable(model)
    model.train()
    model("ner", tiny_ids()).float().sum().backward()
    assert layer.lora_B.grad.dtype == dtype
    model.eval()
    lora.save_lora(model, tmp_path / "ner.pt")   # bfloat16 used to crash the fingerprint
    again = copy.deepcopy(tiny_base).to(dtype)
    lora.add_lora(again, QV, r=4, train_also=["heads.ner"])
    lora.load_lora(again, tmp_path / "ner.pt")
    with torch.no_grad():
        assert torch.equal(again("ner", tiny_ids()), model("ner", tiny_ids()))


def test_lora_follows_the_base_device():
    base = nn.Linear(8, 6, device="meta")
    layer = lora.LoRALinear(base, r=2)
    assert layer.lora_A.device.type == layer.lora_B.device.type == "meta"


def test_a_is_seeded_and_the_same_in_every_dtype():
    generator = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a32 = lora.LoRALinear(nn.Linear(8, 8), 2, generator=generator()).lora_A
    a64 = lora.LoRALinear(nn.Linear(8, 8).double(), 2, generator=generator()).lora_A
    assert torch.allclose(a32.double(), a64)
    other = lora.LoRALinear(nn.Linear(8, 8), 2, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a32, other.lora_A)


def test_add_lora_works_on_any_module_by_name():
    model = nn.Sequential()
    model.add_module("encoder", nn.ModuleDict({"query": nn.Linear(8, 8), "value": nn.Linear(8, 8),
                                               "norm": nn.LayerNorm(8)}))
    model.add_module("classifier", nn.Linear(8, 2))
    trainable = lora.add_lora(model, ("query", "value"), r=2, train_also=["classifier"])
    assert sorted(trainable) == ["classifier.bias", "classifier.weight",
                                 "encoder.query.lora_A", "encoder.query.lora_B",
                                 "encoder.value.lora_A", "encoder.value.lora_B"]
    assert lora.lora_config(model) == {"encoder.query": {"r": 2, "alpha": 8.0, "dropout": 0.0},
                                       "encoder.value": {"r": 2, "alpha": 8.0, "dropout": 0.0}}


@pytest.mark.parametrize("kwargs, error, message", [
    ({"r": 0}, ValueError, "r must be between 1 and min"),
    ({"r": 17}, ValueError, "r must be between 1 and min"),
    ({"r": 2.0}, TypeError, "r must be an integer"),
    ({"r": True}, TypeError, "r must be an integer"),
    ({"r": 4, "targets": ("W_x",)}, ValueError, "no module is named 'W_x'"),
    ({"r": 4, "targets": "W_q"}, TypeError, "write \\('W_q',\\) for one name"),
    ({"r": 4, "targets": ()}, ValueError, "targets is empty"),
    ({"r": 4, "targets": ("attention",)}, TypeError, "LoRA wraps nn.Linear"),
    ({"r": 4, "alpha": 0}, ValueError, "alpha must be > 0"),
    ({"r": 4, "alpha": float("nan")}, ValueError, "alpha must be a finite number"),
    ({"r": 4, "alpha": float("inf")}, ValueError, "alpha must be a finite number"),
    ({"r": 4, "alpha": "8"}, TypeError, "alpha must be a real number"),
    ({"r": 4, "dropout": 1.0}, ValueError, "dropout must be < 1"),
    ({"r": 4, "dropout": -0.1}, ValueError, "dropout must be >= 0"),
    ({"r": 4, "seed": -1}, ValueError, "seed must be >= 0"),
    ({"r": 4, "train_also": ["heads.pos"]}, ValueError, "but no parameter lies in a module"),
    ({"r": 4, "train_also": "heads.ner"}, TypeError, "train_also must be a list"),
])
def test_bad_requests_are_refused(tiny_base, kwargs, error, message):
    kwargs = {"targets": QV, **kwargs}
    with pytest.raises(error, match=message):
        lora.add_lora(copy.deepcopy(tiny_base), **kwargs)


def test_wrapping_twice_and_wrong_types_are_refused(tiny_base):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, QV, r=4)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        lora.add_lora(model, QV, r=4)
    with pytest.raises(TypeError, match="base must be a torch.nn.Linear"):
        lora.LoRALinear(nn.Conv1d(2, 2, 1), r=1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        lora.add_lora("model", QV, r=1)
    assert np.isclose(lora.LoRALinear(nn.Linear(8, 8), r=4, alpha=8).scaling, 2.0)


def test_the_dropout_rate_is_what_the_layer_was_given():
    base = torch.nn.Linear(6, 4)
    assert lora.LoRALinear(base, r=2).dropout_rate == 0.0
    layer = lora.LoRALinear(base, r=2, dropout=0.25)
    assert layer.dropout_rate == 0.25 and layer.config["dropout"] == 0.25


def test_find_fresh_targets_names_the_targets_and_refuses_a_model_with_lora(tiny_base):
    model = copy.deepcopy(tiny_base)
    names, extra = lora.find_fresh_targets(model, QV, ["heads.fpb"])
    assert names == lora.find_targets(model, QV) and extra == ("heads.fpb",)
    with pytest.raises(ValueError, match="train_also"):
        lora.find_fresh_targets(model, QV, ["no.such.module"])
    lora.add_lora(model, QV, r=2)
    with pytest.raises(ValueError, match="already has LoRA layers"):
        lora.find_fresh_targets(model, QV)
