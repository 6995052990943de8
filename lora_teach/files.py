"""Saving and reading files without ever losing what the user saved.

* :func:`save_atomically` writes bytes to a temporary file in the same folder and then moves it
  to the target in one step. If writing fails half-way (disk full, a killed process), the
  previous file is still there, whole. It refuses to replace an existing file unless
  ``overwrite=True``, and of two processes saving the same new file at once exactly one wins.
* :func:`save_torch_file` serialises with ``torch.save`` in memory first, so the same content
  always gives the same bytes, then saves them atomically.
* :func:`load_torch_file` reads a file written with ``torch.save`` in ``weights_only`` mode
  (no pickled code runs) and turns torch's internal errors into one that names the file.
* :func:`read_lines` reads a text file line by line and names the file, line and byte offset
  of any byte that is not valid in the encoding.
* :func:`sha256_of` fingerprints a file, to check a shipped checkpoint before loading it.
* :func:`data_folder` is where ``make setup`` puts the course's downloaded data and converted
  model, outside the repository.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import hashlib
import io
import os
import pathlib
import re
import secrets
import socket
import stat
import sys

import torch

from lora_teach.checks import check_bool, check_instance

# A temporary file's name records the machine and process writing it, so that a later save can
# remove the debris of a save that was killed (nothing else would). It is short whatever the
# target's name, which may itself be up to 255 characters long.
_TEMPORARY = re.compile(r"\.lora_teach\.(?P<host>.*)\.(?P<pid>\d+)\.[0-9a-f]+\.partial")


def _as_path(path, name: str = "path") -> pathlib.Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or pathlib.Path, got {type(path).__name__}")
    return pathlib.Path(path)


def _host() -> str:
    return socket.gethostname()[:64]


def _temporary_name() -> str:
    return f".lora_teach.{_host()}.{os.getpid()}.{secrets.token_hex(4)}.partial"


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)   # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:   # it exists, but belongs to another user
        return True
    return True


def _remove_debris(folder: pathlib.Path) -> None:
    """Delete the temporary files in ``folder`` of saves on this machine whose process is gone."""
    if os.name != "posix":   # elsewhere signal 0 does not just ask; leave the debris
        return
    for temporary in folder.glob(".lora_teach.*.partial"):
        found = _TEMPORARY.fullmatch(temporary.name)
        if found and found["host"] == _host() and not _is_running(int(found["pid"])):
            with contextlib.suppress(OSError):   # tidying up must never stop a save
                temporary.unlink()


def _already_exists(path: pathlib.Path) -> FileExistsError:
    return FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or "
                           f"choose another name")


def _write_new_file(temporary: pathlib.Path, data: bytes, mode_of: pathlib.Path | None) -> None:
    """Write ``data`` to the new file ``temporary`` and flush it to the disk. Its permissions
    are those of ``mode_of`` if given, else those of any new file (0o666 less the umask)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with open(os.open(temporary, flags, 0o666), "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    if mode_of is not None:
        with contextlib.suppress(FileNotFoundError):   # it was removed meanwhile: keep the umask's
            os.chmod(temporary, stat.S_IMODE(os.stat(mode_of).st_mode))


def _move_into_place(temporary: pathlib.Path, path: pathlib.Path, overwrite: bool) -> None:
    if overwrite:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)   # gives the file its name only if the name is free, in one step
    except FileExistsError:
        raise _already_exists(path) from None
    except OSError:   # a file system without hard links (FAT): check, then rename
        if path.exists():
            raise _already_exists(path) from None
        os.replace(temporary, path)


def save_atomically(data: bytes, path, overwrite: bool = False) -> int:
    """Write ``data`` to ``path`` in one step; return its size in bytes.

    ``path`` holds either its old content or all of ``data``, never a part. The new file gets
    the permissions of the file it replaces, or the umask's. Raises FileExistsError if ``path``
    exists (even if it appeared during the save) unless ``overwrite=True``, PermissionError if
    the folder cannot be written and OSError (errno ENOSPC) if the disk is full.
    """
    check_instance(data, "data", bytes)
    path = _as_path(path)
    check_bool(overwrite, "overwrite")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name inside it")
    if path.exists() and not overwrite:
        raise _already_exists(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {path.parent} does not exist")
    temporary = path.parent / _temporary_name()
    try:
        _remove_debris(path.parent)
        _write_new_file(temporary, data, path if overwrite and path.exists() else None)
        _move_into_place(temporary, path, overwrite)
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise OSError(errno.ENOSPC, f"the disk is full: {path} was not saved ({len(data)} "
                                        f"bytes), any file there before is unchanged; free "
                                        f"some space and save again") from None
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise PermissionError(error.errno, f"cannot write in the folder {path.parent} "
                                               f"({error.strerror}); save elsewhere") from None
        raise
    finally:
        if temporary.exists():   # only if it was made: unlink fails in a read-only folder
            temporary.unlink()
    return len(data)


def save_torch_file(obj, path, overwrite: bool = False) -> int:
    """``torch.save(obj)`` to ``path`` atomically; return the file size in bytes.

    The object is serialised in memory first: saved to a file, torch would name the archive's
    root folder after the (temporary) file, so the same content would give other bytes on every
    save, and another size than ``costs.saved_bytes`` reports.
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return save_atomically(buffer.getvalue(), path, overwrite)


def load_torch_file(path, what: str = "file"):
    """``torch.load(path, weights_only=True)`` with an error that names the file.

    ``what`` says what the file should be ("task file", "Model M checkpoint") for the message.
    """
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder, not a {what}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty, so it is not a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # noqa: BLE001 - garbage bytes can break the unpickler anywhere
        # torch's message may suggest weights_only=False, which would run pickled code: never.
        reason = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a readable {what}: it is truncated, damaged or of "
                         f"another kind ({reason})") from None


def sha256_of(path) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(_as_path(path), "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_lines(path, encoding: str):
    """Yield ``(line_number, line)`` for each line of a text file, line ending removed.

    Lines may end in LF (Linux, macOS), CRLF (Windows) or a lone CR (Mac OS 9 and older), mixed
    or not. Byte-order marks are dropped wherever they are: files joined with ``cat`` keep one at
    every join. Errors name the file and the line:

    * a byte that is not valid in ``encoding`` (with its offset, and an encoding to try);
    * a byte-order mark that says the file is in another encoding: a UTF-8 file read as latin-1
      would start with 'ï»¿' and turn every 'ü' into 'Ã¼', so it is refused, saying what to pass.
    """

    path = _as_path(path)
    if not isinstance(encoding, str):
        raise TypeError(f"encoding must be a str such as 'utf-8', got {type(encoding).__name__}")
    try:
        codec = codecs.lookup(encoding).name   # the codec's own name: "UTF8" -> "utf-8"
    except LookupError:
        raise ValueError(f"unknown encoding {encoding!r}") from None
    raw = path.read_bytes()

    def line_at(offset: int) -> int:
        """The number of the line that holds byte ``offset``: one more than the line ends before it."""
        before = raw[:offset].decode(codec, errors="replace")
        return before.count("\n") + before.count("\r") - before.count("\r\n") + 1

    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) and not codec.startswith(("utf-16", "utf-32")):
        raise ValueError(f"{path}:1: the file starts with a UTF-16 byte-order mark, so it is not "
                         f"{encoding}; pass encoding='utf-16'")
    utf8_mark = raw.find(b"\xef\xbb\xbf")
    if utf8_mark >= 0 and not codec.startswith("utf"):
        raise ValueError(f"{path}:{line_at(utf8_mark)}: a UTF-8 byte-order mark (bytes ef bb bf) says "
                         f"the text from here on is UTF-8, not {encoding}; pass encoding='utf-8'")
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}:{line_at(error.start)}: byte {raw[error.start]:#04x} at offset "
                         f"{error.start} is not valid {encoding}; pass the file's encoding, e.g. "
                         f"encoding='latin-1'") from None
    # not str.splitlines(): it also splits at \x85, \v, \f and U+2028, which are text here
    lines = text.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines[-1] == "":
        lines.pop()
    yield from enumerate(lines, start=1)


def data_folder() -> pathlib.Path:
    """Where ``make setup`` puts downloaded data and the converted generative model:
    $LORA_TEACH_DATA, else <environment>/share/lora-teach."""
    return pathlib.Path(os.environ.get("LORA_TEACH_DATA") or pathlib.Path(sys.prefix) / "share" / "lora-teach")
