"""The shipped Model M checkpoint is checked, loads safely and reaches its recorded accuracy."""

import shutil

import numpy as np
import pytest
import torch

from lora_teach import files, metrics, pretrained
from lora_teach.tokenizer import WordTokenizer


@pytest.fixture
def shipped_copy(tmp_path):
    """A copy of the shipped checkpoint and its recorded sha256, to damage freely."""
    path = tmp_path / "model_m.pt"
    shutil.copy(pretrained.CHECKPOINT, path)
    shutil.copy(pretrained.CHECKPOINT.with_name("model_m.pt.sha256"), tmp_path)
    return path


def test_shipped_checkpoint_matches_its_recorded_sha256():
    recorded = pretrained.CHECKPOINT.with_name("model_m.pt.sha256").read_text().strip()
    assert files.sha256_of(pretrained.CHECKPOINT) == recorded


def test_shipped_checkpoint_reaches_its_recorded_accuracy():
    model, tokenizer, info = pretrained.load_model_m()
    _, _, eval_pairs = pretrained.pretraining_data(info["recipe"])
    measured = metrics.evaluate_pretraining(model, eval_pairs)
    assert measured["mlm_accuracy"] == pytest.approx(info["mlm_accuracy"], abs=1e-6)
    assert measured["nsp_accuracy"] == pytest.approx(info["nsp_accuracy"], abs=1e-6)
    # and it learned something: well above chance on both tasks
    assert measured["nsp_accuracy"] > 0.55 and measured["mlm_accuracy"] > 0.4
    assert tokenizer.vocab_size == model.config.vocab_size


def test_the_held_out_pairs_alone_are_those_of_the_whole_pretraining_data():
    _, tokenizer, info = pretrained.load_model_m()
    _, _, eval_pairs = pretrained.pretraining_data(info["recipe"])
    alone = pretrained.pretraining_eval_data(tokenizer, info["recipe"])
    for field in ("input_ids", "segment_ids", "attention_mask", "labels"):
        assert torch.equal(getattr(alone, field), getattr(eval_pairs, field)), field
    assert alone.truncated == eval_pairs.truncated and len(alone) > 100
    with pytest.raises(TypeError, match="tokenizer"):
        pretrained.pretraining_eval_data("words", info["recipe"])
    with pytest.raises(TypeError, match="recipe"):
        pretrained.pretraining_eval_data(tokenizer, [("seed", 0)])


def test_checkpoint_round_trip_is_weights_only_and_refuses_to_overwrite(tmp_path):
    model, tokenizer, info = pretrained.load_model_m()
    path = tmp_path / "copy.pt"
    pretrained.save_model_m(model, tokenizer, info, path)
    saved = torch.load(path, weights_only=True)   # would raise if it needed pickled code
    assert set(saved) == {"config", "state_dict", "vocab", "info"}
    again, _, _ = pretrained.load_model_m(path)
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    # regression: save_model_m used to overwrite an existing file without asking
    with pytest.raises(FileExistsError, match="overwrite=True"):
        pretrained.save_model_m(model, tokenizer, info, path)
    pretrained.save_model_m(model, tokenizer, info, path, overwrite=True)


def test_flipped_bytes_inside_a_tensor_are_detected(shipped_copy):
    # regression: a model_m.pt with flipped bytes inside a tensor used to load silently
    raw = bytearray(shipped_copy.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shipped_copy.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=f"{shipped_copy} does not match its recorded sha256.*"
                                         f"make checkpoint"):
        pretrained.load_model_m(shipped_copy)


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_damaged_checkpoints_name_the_path_and_the_remedy(shipped_copy, damage):
    # regression: torch's internal message, no path, and a hint to use weights_only=False
    raw = shipped_copy.read_bytes()
    content = {"empty": b"", "truncated": raw[:1000], "garbage": b"not a checkpoint" * 10}[damage]
    shipped_copy.write_bytes(content)
    (shipped_copy.parent / "model_m.pt.sha256").write_text(files.sha256_of(shipped_copy))
    with pytest.raises(ValueError, match=str(shipped_copy)) as info:
        pretrained.load_model_m(shipped_copy)
    assert "weights_only=False" not in str(info.value)


def test_missing_checkpoint_or_hash_is_a_clear_error(tmp_path, shipped_copy):
    with pytest.raises(FileNotFoundError, match="make checkpoint"):
        pretrained.load_model_m(tmp_path / "none.pt")
    (shipped_copy.parent / "model_m.pt.sha256").unlink()
    with pytest.raises(FileNotFoundError, match="cannot be checked"):
        pretrained.load_model_m(shipped_copy)


def test_vocabulary_size_is_checked_against_the_embeddings(tmp_path):
    # regression: the tokenizer's vocabulary size was never checked against the embeddings
    model, tokenizer, info = pretrained.load_model_m()
    smaller = WordTokenizer(tokenizer.id_to_token[:-1])
    with pytest.raises(ValueError, match="the tokenizer has 410 ids but the model's embedding has 411"):
        pretrained.save_model_m(model, smaller, info, tmp_path / "x.pt")
    state = {"config": {"vocab_size": 411}, "state_dict": model.state_dict(),
             "vocab": smaller.to_dict(), "info": info}
    path = tmp_path / "y.pt"
    files.save_torch_file(state, path)
    (tmp_path / "y.pt.sha256").write_text(files.sha256_of(path))
    with pytest.raises(ValueError, match="410 ids but the model's embedding has 411 rows"):
        pretrained.load_model_m(path)


@pytest.mark.parametrize("failing_write", [1, 2, 3])
def test_checkpoint_and_sha256_change_together_or_not_at_all(tmp_path, monkeypatch, failing_write):
    # regression: when writing the sha256 failed, the good checkpoint was already replaced and
    # the new one was refused as damaged. A failed write stands for a crash at that moment.
    model, tokenizer, info = pretrained.load_model_m()
    path = tmp_path / "model_m.pt"
    pretrained.save_model_m(model, tokenizer, dict(info, version="old"), path)
    writes = []

    def save_or_fail(data, target, overwrite=False):
        writes.append(target)
        if len(writes) == failing_write:
            raise OSError(f"crash at write {failing_write}")
        return files.save_atomically(data, target, overwrite)

    monkeypatch.setattr(pretrained, "save_atomically", save_or_fail)
    with pytest.raises(OSError, match="crash at write"):
        pretrained.save_model_m(model, tokenizer, dict(info, version="new"), path, overwrite=True)
    monkeypatch.undo()
    _, _, loaded = pretrained.load_model_m(path)
    checkpoint_written = path in writes[:failing_write - 1]
    assert loaded["version"] == ("new" if checkpoint_written else "old")
    # the next save cleans up: the sha256 file records only the new checkpoint again
    pretrained.save_model_m(model, tokenizer, dict(info, version="next"), path, overwrite=True)
    assert (tmp_path / "model_m.pt.sha256").read_text() == files.sha256_of(path) + "\n"
    assert pretrained.load_model_m(path)[2]["version"] == "next"


def test_info_that_could_never_be_loaded_is_refused_at_save(tmp_path):
    # regression: a numpy number in info saved fine, and then the file could never be loaded
    model, tokenizer, info = pretrained.load_model_m()
    path = tmp_path / "model_m.pt"
    bad = dict(info, scores={"f1": [0.5, np.float64(0.25)]})
    with pytest.raises(TypeError, match=r"info\['scores'\]\['f1'\]\[1\] is a numpy.float64.*float\(\)"):
        pretrained.save_model_m(model, tokenizer, bad, path)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(TypeError, match="info must be"):
        pretrained.save_model_m(model, tokenizer, [("seconds", 1.0)], path)


def test_a_digest_recorded_in_upper_case_or_by_sha256sum_is_accepted(shipped_copy):
    # regression: the same digest in upper case was refused as a mismatch
    recorded = shipped_copy.parent / "model_m.pt.sha256"
    recorded.write_text(recorded.read_text().upper())
    pretrained.load_model_m(shipped_copy)
    recorded.write_text(f"{files.sha256_of(shipped_copy)}  model_m.pt\n")   # as sha256sum writes it
    pretrained.load_model_m(shipped_copy)
