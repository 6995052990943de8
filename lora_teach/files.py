"""Saving and reading files without ever losing what the user saved.

* :func:`save_atomically` writes to a temporary file in the same folder and then renames it
  over the target in one step (``os.replace``). If writing fails half-way (disk full, an
  interrupted kernel), the previous file is still there, whole. It refuses to replace an
  existing file unless ``overwrite=True``.
* :func:`load_torch_file` reads a file written with ``torch.save`` in ``weights_only`` mode
  (no pickled code runs) and turns torch's internal errors into one that names the file.
* :func:`read_lines` reads a text file line by line and names the file, line and byte offset
  of any byte that is not valid in the encoding.
* :func:`sha256_of` fingerprints a file, to check a shipped checkpoint before loading it.
"""

from __future__ import annotations

import hashlib
import os
import pathlib
import tempfile

import torch

from lora_teach.checks import check_bool


def _as_path(path, name: str = "path") -> pathlib.Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or pathlib.Path, got {type(path).__name__}")
    return pathlib.Path(path)


def save_atomically(write, path, overwrite: bool = False) -> int:
    """Call ``write(temporary_path)``, then move the result to ``path``; return its size.

    The move is atomic, so ``path`` holds either the old file or the complete new one.
    """
    path = _as_path(path)
    check_bool(overwrite, "overwrite")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name inside it")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or "
                              f"choose another name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {path.parent} does not exist")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial",
                                         dir=path.parent)
    os.close(handle)
    try:
        write(temporary)
        with open(temporary, "rb") as written:
            os.fsync(written.fileno())
        os.replace(temporary, path)
    except BaseException:
        pathlib.Path(temporary).unlink(missing_ok=True)
        raise
    return path.stat().st_size


def save_torch_file(obj, path, overwrite: bool = False) -> int:
    """``torch.save(obj)`` to ``path`` atomically; return the file size in bytes."""
    return save_atomically(lambda temporary: torch.save(obj, temporary), path, overwrite)


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
    import codecs

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
