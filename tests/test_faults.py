"""Real faults against the atomic saves: processes racing, processes killed, a full disk and a
read-only folder. Each save must leave the old file or the whole new one, and no debris.

The full disk and the read-only folder are small tmpfs mounts: they need root (which also
means a chmod cannot make a folder read-only, since root writes through it); without root, or
where mounting is refused, those tests are skipped and say why.
"""

import contextlib
import errno
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from lora_teach import files, pretrained

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(os.name != "posix", reason="the faults are made with POSIX signals and mounts")


def python(code: str, *args) -> subprocess.Popen:
    """Start ``python -c code *args`` with the package importable; its stdout is a pipe."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            text=True)


def debris(folder: pathlib.Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".partial"))


@contextlib.contextmanager
def tmpfs(folder: pathlib.Path, options: str):
    """Mount a tmpfs with ``options`` on ``folder`` for the block, or skip the test saying why."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a small tmpfs needs root and the mount command")
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = (mounted.stderr.strip() or "no reason given").splitlines()[0]
        pytest.skip(f"this machine refuses to mount a tmpfs: {reason}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


RACER = """
import pathlib, sys, time, torch
from lora_teach import files
folder, me, trials = pathlib.Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
content = {"who": torch.full((1_000_000,), float(me))}          # 4 MB: a save takes a while
for trial in range(trials):
    (folder / f"ready-{trial}-{me}").touch()
    while len(list(folder.glob(f"ready-{trial}-*"))) < 2:       # start together
        time.sleep(0.0005)
    try:
        files.save_torch_file(content, folder / f"{trial}.pt")
        print(trial, "saved", flush=True)
    except FileExistsError as error:
        assert str(folder / f"{trial}.pt") in str(error), error
        print(trial, "refused", flush=True)
"""


def test_two_processes_saving_one_new_file_exactly_one_wins(tmp_path):
    # regression: both processes used to report success and one result silently replaced the other
    trials = 8
    racers = [python(RACER, tmp_path, me, trials) for me in (1, 2)]
    outputs = [racer.communicate(timeout=300)[0].split("\n") for racer in racers]
    assert [racer.returncode for racer in racers] == [0, 0]
    for trial in range(trials):
        saved = [me for me, lines in zip((1, 2), outputs) if f"{trial} saved" in lines]
        assert len(saved) == 1, f"trial {trial}: saved by {saved}"
        loaded = files.load_torch_file(tmp_path / f"{trial}.pt")["who"]
        assert torch.equal(loaded, torch.full((1_000_000,), float(saved[0])))
    assert debris(tmp_path) == []


BLOCKED_SAVER = """
import os, sys, time, torch
from lora_teach import files
def blocked(handle):          # the temporary file is written: stop here until killed
    print("in save", flush=True)
    time.sleep(600)
os.fsync = blocked
files.save_torch_file({"x": torch.zeros(100_000)}, sys.argv[1], overwrite=True)
"""

LOOPING_SAVER = """
import sys, torch
from lora_teach import files
print("started", flush=True)
for step in range(10**9):
    files.save_torch_file({"x": torch.full((300_000,), float(step % 7))}, sys.argv[1], overwrite=True)
"""


def test_a_killed_save_keeps_the_old_file_and_the_next_save_removes_its_debris(tmp_path):
    # regression: every SIGKILL during a save left a hidden .partial file that nothing removed
    path = tmp_path / "state.pt"
    files.save_torch_file({"x": torch.arange(5)}, path)
    saver = python(BLOCKED_SAVER, path)
    assert saver.stdout.readline() == "in save\n"
    assert len(debris(tmp_path)) == 1
    files.save_torch_file({"y": torch.ones(2)}, tmp_path / "other.pt")
    assert len(debris(tmp_path)) == 1, "a live save's temporary file was removed"
    saver.send_signal(signal.SIGKILL)
    saver.wait()
    assert torch.equal(files.load_torch_file(path)["x"], torch.arange(5))
    assert len(debris(tmp_path)) == 1
    files.save_torch_file({"y": torch.zeros(2)}, tmp_path / "other.pt", overwrite=True)
    assert debris(tmp_path) == []


def kill_while_saving(script, path, delay):
    """Start ``script`` saving to ``path`` over and over, and SIGKILL it ``delay`` seconds in."""
    saver = python(script, path)
    assert saver.stdout.readline() == "started\n"
    time.sleep(delay)
    saver.send_signal(signal.SIGKILL)
    saver.wait()


def test_saves_killed_at_random_moments_leave_a_whole_file(tmp_path):
    path = tmp_path / "state.pt"
    files.save_torch_file({"x": torch.full((300_000,), -1.0)}, path)
    for delay in (0.3, 0.7, 1.1):
        kill_while_saving(LOOPING_SAVER, path, delay)
        x = files.load_torch_file(path)["x"]      # whole: one of the saved contents, all of it
        assert x.shape == (300_000,) and torch.equal(x, torch.full_like(x, x[0].item()))
    files.save_torch_file({}, tmp_path / "other.pt")
    assert debris(tmp_path) == []


def test_a_full_disk_is_named_as_such_and_keeps_the_old_file(tmp_path):
    # regression: a full disk gave torch's "unexpected pos" error and no word of the disk
    with tmpfs(tmp_path / "small", "size=1m") as small:
        path = small / "state.pt"
        files.save_torch_file({"x": torch.arange(5)}, path)
        for overwrite, target in ((True, path), (False, small / "new.pt")):
            with pytest.raises(OSError, match=f"disk is full.*{target}") as info:
                files.save_torch_file({"x": torch.zeros(1_000_000)}, target, overwrite=overwrite)   # 4 MB
            assert info.value.errno == errno.ENOSPC
            assert torch.equal(files.load_torch_file(path)["x"], torch.arange(5))
            assert sorted(p.name for p in small.iterdir()) == ["state.pt"]


def test_a_read_only_folder_is_named(tmp_path):
    # regression: a read-only mount gave a bare "[Errno 30]" naming a temporary file
    if os.geteuid() == 0:   # root writes through a chmod: mount read-only
        context = tmpfs(tmp_path / "locked", "ro,size=1m")
    else:
        (tmp_path / "locked").mkdir()
        (tmp_path / "locked").chmod(0o555)
        context = contextlib.nullcontext(tmp_path / "locked")
    with context as locked:
        with pytest.raises(PermissionError, match=f"cannot write in the folder {locked}"):
            files.save_torch_file({"x": torch.arange(5)}, locked / "state.pt")


MODEL_M_SAVER = """
import sys
from lora_teach import pretrained
model, tokenizer, info = pretrained.load_model_m()
print("started", flush=True)
for step in range(10**9):
    pretrained.save_model_m(model, tokenizer, dict(info, step=step), sys.argv[1], overwrite=True)
"""


def test_model_m_saves_killed_at_random_moments_leave_a_checkpoint_that_matches(tmp_path):
    # the checkpoint and its sha256 are two files: every kill must leave a pair that loads
    path = tmp_path / "model_m.pt"
    model, tokenizer, info = pretrained.load_model_m()
    pretrained.save_model_m(model, tokenizer, dict(info, step=-1), path)
    for delay in (0.2, 0.5, 0.9):
        kill_while_saving(MODEL_M_SAVER, path, delay)
        assert isinstance(pretrained.load_model_m(path)[2]["step"], int)
    pretrained.save_model_m(model, tokenizer, dict(info, step="last"), path, overwrite=True)
    assert debris(tmp_path) == []
    assert (tmp_path / "model_m.pt.sha256").read_text() == files.sha256_of(path) + "\n"
