"""Task files: what a parameter-efficient method stores for one task, and how it is checked.

A task file holds the tensors the task trained (LoRA's A and B, or the adapters and
LayerNorms, plus the task head) and describes itself, so that it can only be loaded where it
computes what it computed when it was saved:

* ``method`` and ``config``: e.g. LoRA with r, alpha and dropout for every wrapped layer, or
  adapters with their bottleneck size. A model set up differently is refused, naming the
  difference (a file trained with alpha = 16 would silently compute something else with
  alpha = 8).
* ``frozen``: a fingerprint (sha256) of every frozen tensor the task's function depends on,
  LayerNorms and heads included, so a file trained on one base is refused by another, naming
  the tensors that differ. A model with a tensor the fingerprint does not list is refused too.
* ``checksum``: the sha256 of the file's own tensors, checked when it is read, so a damaged
  file is refused instead of silently computing something else.

Model M reads one head per task, so one base can serve many tasks: when a file carries a head
(trained, or with LoRA), Model M's other heads are left out of the fingerprint. A file that
carries no head (e.g. LoRA read through the frozen MLM head) fingerprints every head.
"""

from __future__ import annotations

import hashlib
import pathlib

import torch
from torch import nn

from lora_teach.checks import check_instance
from lora_teach.files import load_torch_file
from lora_teach.model import ModelM

FORMAT = "lora_teach task file"
VERSION = 3   # 3: heads in the fingerprint, and a checksum of the tensors
WRAPPER_PART = ".base."   # LoRA wraps a layer and keeps the original as its ``base``


def base_name(name: str) -> str:
    """A tensor's name in the unwrapped base model: LoRA's wrapper adds a ``.base`` part."""
    check_instance(name, "name", str)
    return name.replace(WRAPPER_PART, ".")


def _add_tensor(digest, tensor: torch.Tensor) -> None:
    """Feed a tensor's dtype, shape and bytes (any dtype, bfloat16 included) to a sha256."""
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    digest.update(f"{tensor.dtype}{tuple(tensor.shape)}".encode())
    digest.update(flat.view(torch.uint8).numpy().tobytes())


def _digest(tensor: torch.Tensor) -> str:
    """The first 16 hex digits (64 bits) of the sha256 of a tensor's dtype, shape and bytes:
    short, and a change of one bit changes it."""
    digest = hashlib.sha256()
    _add_tensor(digest, tensor)
    return digest.hexdigest()[:16]


def _checksum(tensors: dict) -> str:
    """The sha256 of named tensors (names, dtypes, shapes and bytes, in name order): what a
    task file stores about its own tensors, to notice a damaged byte when it is read."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        _add_tensor(digest, tensors[name])
    return digest.hexdigest()


def _head(name: str) -> str | None:
    """The head a tensor of Model M lies in ("heads.ner.base.weight" -> "heads.ner"), or None."""
    parts = name.split(".")
    return ".".join(parts[:2]) if parts[0] == "heads" and len(parts) > 2 else None


def fingerprint(model: nn.Module, skip=()) -> dict[str, dict]:
    """For every tensor of ``model`` (parameters and buffers) except those in ``skip`` (the
    ones a task file carries): its sha256 and its norm, keyed by its name in the base.
    Model M's heads that ``skip`` does not touch are left out if it touches one: that one is
    the task's head, and the task reads no other."""
    check_instance(model, "model", nn.Module)
    task_heads = {_head(name) for name in skip if _head(name)} if isinstance(model, ModelM) else set()
    prints = {}
    for name, tensor in model.state_dict().items():
        head = _head(name)
        if name in skip or (head and task_heads and head not in task_heads):
            continue
        prints[base_name(name)] = {"sha256": _digest(tensor),
                                   "norm": float(tensor.detach().double().norm())}
    return prints


def task_state(model: nn.Module, method: str, config: dict) -> dict:
    """What a task file holds: the trainable tensors, the method's configuration and the
    base's fingerprint."""
    check_instance(model, "model", nn.Module)
    tensors = {name: p.detach().cpu().clone() for name, p in model.named_parameters()
               if p.requires_grad}
    if not tensors:
        raise ValueError("the model has no trainable tensors, so there is nothing to save; "
                         "add LoRA or adapters (or unfreeze a head) first")
    return {"format": FORMAT, "version": VERSION, "method": method, "config": config,
            "frozen": fingerprint(model, skip=tensors), "tensors": tensors, "checksum": _checksum(tensors)}


ENTRIES = {"method": str, "config": dict, "frozen": dict, "tensors": dict, "checksum": str}


def _malformed(saved: dict) -> list[str]:
    """The entries of a task file that are missing or not what :func:`task_state` writes."""
    wrong = [key for key, kind in ENTRIES.items() if not isinstance(saved.get(key), kind)]
    if "tensors" not in wrong and not all(isinstance(t, torch.Tensor) for t in saved["tensors"].values()):
        wrong.append("tensors")
    if "frozen" not in wrong and not all(isinstance(entry, dict) and {"sha256", "norm"} <= entry.keys()
                                         for entry in saved["frozen"].values()):
        wrong.append("frozen")
    return wrong


def read_task_file(path) -> dict:
    """Read a task file, checking that it is one, of this course's version, complete and
    undamaged (its tensors match their checksum); a clear error names the path otherwise."""
    saved = load_torch_file(path, "task file")
    path = pathlib.Path(path)
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a lora_teach task file (no 'format': {FORMAT!r} entry); "
                         f"was it saved with save_lora or save_adapters?")
    version = saved.get("version")
    if isinstance(version, int) and version < VERSION:
        raise ValueError(f"{path} is a task file of version {version}, from an older version of the "
                         f"course, which could not check the base's heads and its own bytes; this "
                         f"course reads version {VERSION}: save the task again")
    if version != VERSION:
        raise ValueError(f"{path} is a task file of version {version!r}; this course reads version {VERSION}")
    wrong = _malformed(saved)
    if wrong:
        raise ValueError(f"{path} is an incomplete task file (missing or malformed: {wrong}); save the task again")
    if _checksum(saved["tensors"]) != saved["checksum"]:
        raise ValueError(f"{path} is damaged: its tensors do not match the checksum saved with them, "
                         f"so they are not what was trained; save the task again")
    return saved


def _config_differences(saved: dict, current: dict) -> list[str]:
    """What differs between two configurations ``{module: {setting: value}}``, grouped so
    that one sentence covers every module with the same difference."""
    only_file = [name for name in saved if name not in current]
    only_model = [name for name in current if name not in saved]
    differences = []
    if only_file:
        differences.append(f"the file adapts {only_file}, which this model does not")
    if only_model:
        differences.append(f"this model adapts {only_model}, which the file does not "
                           f"(they would keep another task's values)")
    grouped: dict[tuple, list[str]] = {}
    for name in saved:
        if name in current:
            for key in sorted(set(saved[name]) | set(current[name])):
                pair = (saved[name].get(key), current[name].get(key))
                if pair[0] != pair[1]:
                    grouped.setdefault((key, *pair), []).append(name)
    for (key, in_file, in_model), names in grouped.items():
        where = "every layer" if len(names) == len(saved) else f"{names}"
        differences.append(f"{key} is {in_file} in the file but {in_model} in this model "
                           f"({where})")
    return differences


def _base_differences(saved: dict, current: dict) -> list[str]:
    """Names of the frozen tensors that differ, with a hint when only the last bits do."""
    missing = [name for name in saved if name not in current]
    changed = [name for name in saved if name in current
               and saved[name]["sha256"] != current[name]["sha256"]]
    rounded = [name for name in changed
               if abs(saved[name]["norm"] - current[name]["norm"])
               <= 1e-6 * max(abs(saved[name]["norm"]), 1e-30)]
    differences = []
    if missing:
        differences.append(f"this model lacks {missing[:3]}")
    other = [name for name in changed if name not in rounded]
    if other:
        differences.append(f"{other[:3]}{' and more' if len(other) > 3 else ''} differ")
    if rounded:
        differences.append(f"{rounded[:3]}{' and more' if len(rounded) > 3 else ''} differ in "
                           f"their last bits, as after merging and unmerging LoRA (which "
                           f"rounds): reload the base model, and merge a copy instead")
    return differences


def load_task_file(model: nn.Module, path, method: str, config: dict) -> None:
    """Copy a task file's tensors into ``model`` after checking that the file belongs here:
    same method, same configuration, same frozen base. Each refusal names the difference."""
    check_instance(model, "model", nn.Module)
    check_instance(method, "method", str)
    check_instance(config, "config", dict)
    saved = read_task_file(path)
    path = pathlib.Path(path)
    if saved["method"] != method:
        raise ValueError(f"{path} holds a {saved['method']} task, not a {method} one (the method asked for)")
    differences = _config_differences(saved["config"], config)
    if differences:
        raise ValueError(f"{path} was saved with another {method} configuration: "
                         + "; ".join(differences))
    parameters = dict(model.named_parameters())
    for name, tensor in saved["tensors"].items():
        if name not in parameters:
            raise ValueError(f"{path} holds {name!r}, which this model does not have; add the "
                             f"same modules at the same places first")
        if parameters[name].shape != tensor.shape:
            raise ValueError(f"tensor {name!r} has shape {tuple(tensor.shape)} in {path.name} "
                             f"but {tuple(parameters[name].shape)} in the model")
    current = fingerprint(model, skip=saved["tensors"])
    unlisted = [name for name in current if name not in saved["frozen"]]
    if unlisted:
        raise ValueError(f"the fingerprint in {path} does not list {unlisted[:3]}"
                         f"{' and more' if len(unlisted) > 3 else ''}, which this model's task depends on, "
                         f"so it cannot vouch for them: was the file edited, or saved from a model set up "
                         f"differently?")
    differences = _base_differences(saved["frozen"], current)
    if differences:
        raise ValueError(f"{path} was trained on another base model: " + "; ".join(differences))
    with torch.no_grad():
        for name, tensor in saved["tensors"].items():
            parameters[name].copy_(tensor)
