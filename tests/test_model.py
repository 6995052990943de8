"""Tests for lora_teach.model: shapes, masking, heads, freezing, and bad input."""

import pytest
import torch
from helpers import count_parameters

from lora_teach.model import TASKS, ModelConfig, ModelM, freeze_all_except, reset_head

CONFIG = ModelConfig(vocab_size=50, d_model=16, n_heads=2, d_ffn=32, n_layers=2, max_len=12)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ModelM(CONFIG).eval()


def test_every_head_has_the_right_output_shape(model):
    ids = torch.randint(5, 50, (3, 10))
    assert model("mlm", ids).shape == (3, 10, 50)
    assert model("ner", ids).shape == (3, 10, CONFIG.n_ner_tags)
    assert model("nsp", ids).shape == (3, 2)
    assert model("fpb", ids).shape == (3, CONFIG.n_sentiments)


def test_projections_are_separate_named_linear_layers(model):
    names = {name for name, _ in model.named_modules()}
    for projection in ("W_q", "W_k", "W_v", "W_o"):
        assert f"layers.0.attention.{projection}" in names
    assert "layers.1.feed_forward.ffn_in" in names and "layers.1.feed_forward.ffn_out" in names


def test_padding_does_not_change_the_real_tokens(model):
    ids = torch.randint(5, 50, (1, 6))
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], dim=1)
    mask = padded != 0
    short = model.encode(ids)
    long = model.encode(padded, attention_mask=mask)[:, :6]
    assert torch.allclose(short, long, atol=1e-5)


def test_parameter_count_matches_the_architecture(model):
    d, f, v, t = CONFIG.d_model, CONFIG.d_ffn, CONFIG.vocab_size, CONFIG.max_len
    embeddings = (v + t + CONFIG.n_segments) * d + 2 * d
    layer = 4 * (d * d + d) + 2 * d + (d * f + f) + (f * d + d) + 2 * d
    heads = (d * v + v) + (d * 2 + 2) + (d * 7 + 7) + (d * 3 + 3)
    assert count_parameters(ModelM(CONFIG)) == embeddings + CONFIG.n_layers * layer + heads


def test_freeze_all_except_leaves_only_the_named_parameters_trainable(model):
    trainable = freeze_all_except(model, ["heads.ner"])
    assert trainable == ["heads.ner.weight", "heads.ner.bias"]
    assert count_parameters(model, trainable_only=True) == CONFIG.d_model * 7 + 7
    with pytest.raises(ValueError, match="keep names 'heads.xyz', but no parameter lies"):
        freeze_all_except(model, ["heads.xyz"])
    with pytest.raises(ValueError, match="keep names 'heads.n', but no parameter lies"):
        freeze_all_except(model, ["heads.n"])   # a module path, not a string prefix
    with pytest.raises(TypeError, match="keep must be a list or tuple"):
        freeze_all_except(model, "heads.ner")


def test_reset_head_is_seeded(model):
    reset_head(model, "fpb", seed=3)
    first = model.heads["fpb"].weight.clone()
    reset_head(model, "fpb", seed=3)
    assert torch.equal(first, model.heads["fpb"].weight)
    reset_head(model, "fpb", seed=4)
    assert not torch.equal(first, model.heads["fpb"].weight)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"d_model": 10, "n_heads": 4}, ValueError, "divisible"),
    ({"n_layers": 0}, ValueError, "n_layers must be >= 1"),
    ({"d_model": 16.0}, TypeError, "d_model must be an integer"),
])
def test_bad_config_is_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        ModelConfig(vocab_size=50, **kwargs)


def test_bad_calls_are_named(model):
    with pytest.raises(ValueError, match="task must be one of"):
        model("pos", torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds max_len"):
        model("ner", torch.zeros(1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="shape \\(batch, length\\)"):
        model("ner", torch.zeros(3, dtype=torch.long))
    with pytest.raises(TypeError, match="ModelConfig"):
        ModelM({"vocab_size": 5})
    with pytest.raises(TypeError, match="torch.long"):
        model("ner", torch.zeros(1, 3))
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 50\)"):
        model("ner", torch.full((1, 3), 50))
    with pytest.raises(TypeError, match="input_ids must be a torch.Tensor"):
        model("ner", [[1, 2, 3]])
    with pytest.raises(ValueError, match="seed must be >= 0"):
        reset_head(model, "ner", seed=-2)
    assert set(TASKS) == set(model.heads)


IDS = torch.randint(5, 50, (2, 6), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("task", ["ner", "fpb"])
@pytest.mark.parametrize("kwargs, error, message", [
    ({"input_ids": torch.zeros(2, 0, dtype=torch.long)}, ValueError, "input_ids has length 0"),
    ({"segment_ids": torch.full((2, 6), 2)}, ValueError, r"segment_ids must lie in \[0, 2\)"),
    ({"segment_ids": torch.full((2, 6), -1)}, ValueError, r"segment_ids must lie in \[0, 2\)"),
    ({"segment_ids": torch.zeros(2, 5, dtype=torch.long)}, ValueError, r"segment_ids must have the shape .* \(2, 6\)"),
    ({"segment_ids": torch.zeros(2, 6)}, TypeError, "segment_ids must hold segment numbers"),
    ({"segment_ids": [[0] * 6] * 2}, TypeError, "segment_ids must be a torch.Tensor"),
    ({"attention_mask": torch.ones(6, dtype=torch.bool)}, ValueError, "attention_mask must have the shape"),
    ({"attention_mask": torch.zeros(2, 6)}, TypeError, "attention_mask must be bool or integer"),
    ({"attention_mask": torch.full((2, 6), 2)}, ValueError, "attention_mask must hold only 0"),
    ({"attention_mask": torch.tensor([[1] * 6, [0] * 6])}, ValueError, "row 1 of attention_mask has no real token"),
])
def test_bad_segment_ids_masks_and_lengths_are_named(model, task, kwargs, error, message):
    # regression: these failed deep inside torch (IndexError, RuntimeError) or ran on silently
    with pytest.raises(error, match=message):
        model(task, **{"input_ids": IDS, **kwargs})


def test_an_integer_mask_and_second_segments_are_read(model):
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    segments = torch.tensor([[0, 0, 1, 1, 1, 1]] * 2)
    with torch.no_grad():
        as_bool = model("ner", IDS, segments, mask.bool())
        assert torch.equal(model("ner", IDS, segments, mask), as_bool)
        assert not torch.equal(model("ner", IDS, attention_mask=mask), as_bool)   # the segments count


def test_in_module_and_check_module_names_refuse_names_that_are_not_strings(model):
    from lora_teach.model import check_module_names, in_module
    assert in_module("heads.ner.weight", "heads.") and not in_module("heads.ner.weight", "heads.n")
    # regression: these gave AttributeError: 'NoneType' object has no attribute 'startswith'
    with pytest.raises(TypeError, match="name must be a str"):
        in_module(None, "heads")
    with pytest.raises(TypeError, match="prefix must be a str"):
        in_module("heads.ner.weight", ["heads"])
    # regression: argument=None was taken, and later messages said "None names ..."
    with pytest.raises(TypeError, match="argument must be a str"):
        check_module_names(model, ["heads.ner"], None)
