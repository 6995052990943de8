"""Tests for lora_teach.files and lora_teach.taskfiles: atomic saves, clear errors, fingerprints."""

import copy
import errno
import os
import pathlib
import socket
import stat
import subprocess

import pytest
import torch
from helpers import perturb_trainable

from lora_teach import costs, files, lora, taskfiles


def fail_with(code):
    """A stand-in for os.fsync that fails as the system would with errno ``code``."""
    def fail(handle):
        raise OSError(code, os.strerror(code))
    return fail


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
    monkeypatch.setattr(os, "fsync", fail_with(errno.EIO))   # the temporary file is written...
    with pytest.raises(OSError, match="Input/output error"):
        files.save_torch_file({"x": torch.arange(9)}, path, overwrite=True)
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"]


def test_a_failed_task_file_save_keeps_the_previous_file(tiny_base, tmp_path, monkeypatch):
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, ("W_q",), r=2)
    path = tmp_path / "task.pt"
    lora.save_lora(perturb_trainable(model), path)
    good = path.read_bytes()
    monkeypatch.setattr(os, "fsync", fail_with(errno.EIO))
    with pytest.raises(OSError, match="Input/output error"):
        lora.save_lora(model, path, overwrite=True)
    assert path.read_bytes() == good
    monkeypatch.undo()
    lora.load_lora(model, path)


def test_a_full_disk_is_named_as_such(tmp_path, monkeypatch):
    # regression: a full disk surfaced as torch's "unexpected pos" error (tests/test_faults.py
    # fills a real small disk where the machine allows it)
    monkeypatch.setattr(os, "fsync", fail_with(errno.ENOSPC))
    with pytest.raises(OSError, match=f"the disk is full: {tmp_path / 'x.pt'} was not saved") as info:
        files.save_torch_file({"x": torch.arange(3)}, tmp_path / "x.pt")
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_overwrite_false_refuses_a_file_that_appears_during_the_save(tmp_path, monkeypatch):
    # regression: the existence check and the replace were separate steps, so a file another
    # process saved in between was silently replaced
    path = tmp_path / "x.pt"

    def another_process_saves_first(handle):
        path.write_bytes(b"theirs")

    monkeypatch.setattr(os, "fsync", another_process_saves_first)
    with pytest.raises(FileExistsError, match=f"{path} already exists"):
        files.save_torch_file({"x": torch.arange(3)}, path)
    assert path.read_bytes() == b"theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["x.pt"]


def test_saved_files_get_the_umasks_permissions_or_keep_the_replaced_files(tmp_path):
    # regression: every saved file was made 0600 (unreadable to others), whatever the umask
    old_umask = os.umask(0o022)
    try:
        files.save_torch_file({}, tmp_path / "new.pt")
        (tmp_path / "shared.pt").write_bytes(b"")
        (tmp_path / "shared.pt").chmod(0o664)
        files.save_torch_file({}, tmp_path / "shared.pt", overwrite=True)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "new.pt").stat().st_mode) == 0o666 & ~0o022
    assert stat.S_IMODE((tmp_path / "shared.pt").stat().st_mode) == 0o664


def test_a_long_legal_file_name_can_be_saved(tmp_path):
    # regression: the hidden temporary name (the target's name and more) passed the 255 limit
    path = tmp_path / ("n" * 240 + ".pt")
    files.save_torch_file({"x": torch.arange(3)}, path)
    assert torch.equal(files.load_torch_file(path)["x"], torch.arange(3))


def test_the_same_content_gives_the_same_bytes_as_many_as_the_course_reports(tiny_base, tmp_path):
    # regression: torch.save named the archive inside after the random temporary file
    model = copy.deepcopy(tiny_base)
    lora.add_lora(model, ("W_q",), r=2)
    state = lora.lora_task_state(model)
    size = lora.save_lora(model, tmp_path / "a.pt")
    lora.save_lora(model, tmp_path / "b.pt")
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert size == (tmp_path / "a.pt").stat().st_size == costs.saved_bytes(state)


def test_a_save_removes_only_the_debris_of_killed_saves_on_this_machine(tmp_path, monkeypatch):
    # (tests/test_faults.py kills real saves; here the debris is made by hand)
    finished = subprocess.Popen(["true"])
    finished.wait()
    host = socket.gethostname()
    names = {"killed": f".lora_teach.{host}.{finished.pid}.0badf00d.partial",
             "unremovable": f".lora_teach.{host}.{finished.pid}.0ddba11.partial",
             "live": f".lora_teach.{host}.{os.getpid()}.0badf00d.partial",
             "elsewhere": f".lora_teach.other-machine.{finished.pid}.0badf00d.partial"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"half a file")
    unlink = pathlib.Path.unlink

    def refuse_one(self, *args, **kwargs):
        if self.name == names["unremovable"]:
            raise PermissionError(errno.EPERM, "not yours")
        return unlink(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "unlink", refuse_one)
    files.save_torch_file({}, tmp_path / "x.pt")
    left = {p.name for p in tmp_path.iterdir()}
    assert left == {"x.pt"} | {names[kind] for kind in ("unremovable", "live", "elsewhere")}


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


def test_fingerprint_covers_layernorms_buffers_and_heads(tiny_base):
    prints = taskfiles.fingerprint(tiny_base)
    assert "embedding_norm.weight" in prints and "layers.0.attention_norm.bias" in prints
    assert "heads.mlm.weight" in prints   # a file without a head of its own is read through any head
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
