"""Tests for lora_teach.files and lora_teach.taskfiles: atomic saves, clear errors, fingerprints."""

import copy
import pathlib

import pytest
import torch
from helpers import perturb_trainable

from lora_teach import files, lora, taskfiles


def test_save_is_atomic_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "state.pt"
    size = files.save_torch_file({"x": torch.arange(3)}, path)
    assert size == path.stat().st_size > 0
    with pytest.raises(FileExistsError, match="overwrite=True"):
        files.save_torch_file({"x": torch.arange(5)}, path)
    assert torch.equal(files.load_torch_file(path)["x"], torch.arange(3))
    files.save_torch_file({"x": torch.arange(5)}, path, overwrite=True)
    assert torch.equal(files.load_torch_file(path)["x"], torch.arange(5))
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]   # no temporary file left


def test_a_save_that_fails_half_way_keeps_the_previous_file(tmp_path, monkeypatch):
    # regression: a failing save used to leave a truncated file where the good one was
    path = tmp_path / "state.pt"
    files.save_torch_file({"x": torch.arange(3)}, path)
    good = path.read_bytes()

    def broken_save(obj, target):
        pathlib.Path(target).write_bytes(good[: len(good) // 2])   # half written...
        raise OSError("disk full")                                  # ...then the disk fills up

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        files.save_torch_file({"x": torch.arange(9)}, path, overwrite=True)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_a_failed_task_file_save_keeps_the_previous_file(tiny_base, tmp_path, monkeypatch):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, ("W_q",), r=2)
    path = tmp_path / "task.pt"
    lora.save_lora(perturb_trainable(model), path)
    good = path.read_bytes()
    monkeypatch.setattr(torch, "save", lambda obj, target: (
        pathlib.Path(target).write_bytes(b"PK\x03\x04 half"), (_ for _ in ()).throw(OSError("killed"))))
    with pytest.raises(OSError, match="killed"):
        lora.save_lora(model, path, overwrite=True)
    assert path.read_bytes() == good
    monkeypatch.undo()
    lora.load_lora(model, path)


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"),
    (b"this is not a checkpoint", "not a readable task file"),
])
def test_unreadable_files_get_one_clear_error_naming_the_path(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        taskfiles.read_task_file(path)
    assert str(path) in str(info.value)
    assert "weights_only=False" not in str(info.value)   # never suggest running pickled code


def test_a_truncated_file_is_named(tmp_path):
    path = tmp_path / "cut.pt"
    files.save_torch_file({"x": torch.randn(100)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=f"{path}.*truncated, damaged"):
        files.load_torch_file(path, "checkpoint")


def test_a_file_of_another_kind_is_not_a_task_file(tmp_path):
    # regression: such a file used to fail with KeyError: 'base'
    path = tmp_path / "weights.pt"
    files.save_torch_file({"weight": torch.ones(2)}, path)
    with pytest.raises(ValueError, match=f"{path} is not a lora_teach task file"):
        taskfiles.read_task_file(path)


def test_missing_files_and_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="no task file at"):
        taskfiles.read_task_file(tmp_path / "none.pt")
    with pytest.raises(IsADirectoryError, match="is a folder"):
        files.load_torch_file(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a folder"):
        files.save_torch_file({}, tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        files.save_torch_file({}, tmp_path / "missing" / "x.pt")
    with pytest.raises(TypeError, match="path must be a str or pathlib.Path"):
        files.save_torch_file({}, 3)
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        files.save_torch_file({}, tmp_path / "x.pt", overwrite="yes")


def test_fingerprint_covers_layernorms_and_buffers_but_not_heads(tiny_base):
    prints = taskfiles.fingerprint(tiny_base)
    assert "embedding_norm.weight" in prints and "layers.0.attention_norm.bias" in prints
    assert not any(name.startswith("heads.") for name in prints)
    wrapped = copy.deepcopy(tiny_base)
    lora.add_lora(wrapped, ("W_q",), r=2)
    skip = {name for name, p in wrapped.named_parameters() if p.requires_grad}
    assert taskfiles.fingerprint(wrapped, skip) == prints   # ".base." names map to the base's


def test_fingerprint_sees_one_changed_bit(tiny_base):
    changed = copy.deepcopy(tiny_base)
    with torch.no_grad():
        flat = changed.layers[0].attention.W_k.weight.view(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(1.0))
    before, after = taskfiles.fingerprint(tiny_base), taskfiles.fingerprint(changed)
    assert [n for n in before if before[n] != after[n]] == ["layers.0.attention.W_k.weight"]


def test_fingerprint_handles_bfloat16(tiny_base):
    # regression: the fingerprint used numpy, which has no bfloat16
    prints = taskfiles.fingerprint(copy.deepcopy(tiny_base).to(torch.bfloat16))
    assert len(prints) == len(taskfiles.fingerprint(tiny_base))


def test_read_lines_names_file_line_and_byte_of_a_bad_byte(tmp_path):
    # regression: non-UTF-8 input gave a bare UnicodeDecodeError with no file or line
    path = tmp_path / "text.txt"
    path.write_bytes("first\nsecond caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=f"{path}:2: byte 0xe9 at offset 16 is not valid utf-8"):
        list(files.read_lines(path, "utf-8"))
    assert list(files.read_lines(path, "latin-1")) == [(1, "first"), (2, "second café")]
    with pytest.raises(ValueError, match="unknown encoding"):
        list(files.read_lines(path, "klingon"))


def test_read_lines_drops_a_byte_order_mark_and_windows_line_ends(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffa b\r\nc\r\n".encode("utf-8"))
    assert list(files.read_lines(path, "utf-8")) == [(1, "a b"), (2, "c")]


def test_sha256_of_a_file(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"abc")
    assert files.sha256_of(path) == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
