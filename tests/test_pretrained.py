"""The shipped Model M checkpoint loads safely and still reaches its recorded accuracy."""

import pytest
import torch

from lora_teach import pretrained, training


def test_shipped_checkpoint_reaches_its_recorded_accuracy():
    model, tokenizer, info = pretrained.load_model_m()
    _, _, eval_pairs = pretrained.pretraining_data(info["recipe"])
    measured = training.evaluate_pretraining(model, eval_pairs)
    assert measured["mlm_accuracy"] == pytest.approx(info["mlm_accuracy"], abs=1e-6)
    assert measured["nsp_accuracy"] == pytest.approx(info["nsp_accuracy"], abs=1e-6)
    # and it learned something: well above chance on both tasks
    assert measured["nsp_accuracy"] > 0.55 and measured["mlm_accuracy"] > 0.4
    assert tokenizer.vocab_size == model.config.vocab_size


def test_checkpoint_is_loaded_weights_only(tmp_path):
    model, tokenizer, info = pretrained.load_model_m()
    path = tmp_path / "copy.pt"
    pretrained.save_model_m(model, tokenizer, info, path)
    saved = torch.load(path, weights_only=True)   # would raise if it needed pickled code
    assert set(saved) == {"config", "state_dict", "vocab", "info"}
    again, _, _ = pretrained.load_model_m(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="make checkpoint"):
        pretrained.load_model_m(tmp_path / "none.pt")
