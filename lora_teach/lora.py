"""LoRA: Low-Rank Adaptation (Hu et al. 2021), for Model M and for any PyTorch model.

A LoRA layer keeps a pretrained linear layer W0 frozen and learns a low-rank update beside it:

    h = W0 x + (alpha / r) * B A x,     B: d_out x r (starts at zero),  A: r x d_in (random)

Because B starts at zero, the adapted model starts *exactly* as the pretrained one. After
training, the update can be merged into the weight, W = W0 + (alpha / r) B A, so inference
costs nothing extra; unmerging subtracts it again (up to floating-point rounding).

:func:`add_lora` wraps layers chosen by name, as Hugging Face PEFT's ``target_modules`` does:
a target such as ``"W_q"`` (Model M) or ``"query"`` (BERT) matches every ``nn.Linear`` whose
name is the target or ends with ``"." + target``.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from lora_teach.checks import check_bool, check_instance, check_int, check_names, check_real
from lora_teach.files import save_torch_file
from lora_teach.model import check_module_names, freeze_all_except, refuse_overlap
from lora_teach.taskfiles import load_task_file, task_state

DEFAULT_ALPHA = 8.0   # as PEFT: alpha is fixed, not tied to r, so alpha / r shrinks as r grows


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable low-rank update (alpha / r) * B A.

    Initialisation as in the paper's code and PEFT: A with Kaiming-uniform noise, B with zeros.
    A and B live on the base layer's device and in its dtype. ``dropout`` applies to the LoRA
    branch's input only. ``generator`` seeds A (its values do not depend on device or dtype).
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float = DEFAULT_ALPHA,
                 dropout: float = 0.0, generator: torch.Generator | None = None):
        super().__init__()
        check_instance(base, "base", nn.Linear)
        largest = min(base.in_features, base.out_features)
        r = check_int(r, "r")
        if not 1 <= r <= largest:
            raise ValueError(f"r must be between 1 and min(d_in, d_out) = {largest} for this "
                             f"{base.out_features}x{base.in_features} layer, got {r}")
        self.alpha = check_real(alpha, "alpha", minimum=0, include_minimum=False)
        self._wrap(base, dropout)
        self.r = r
        self.scaling = self.alpha / r
        weight = base.weight
        A = torch.empty(r, base.in_features)
        nn.init.kaiming_uniform_(A, a=math.sqrt(5), generator=generator)
        self.lora_A = nn.Parameter(A.to(device=weight.device, dtype=weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, device=weight.device,
                                               dtype=weight.dtype))

    def _wrap(self, base: nn.Linear, dropout: float) -> None:
        """What every layer of this kind holds besides its update: the frozen base layer, the
        dropout on the update's input, and the merged and enabled switches."""
        dropout = check_real(dropout, "dropout", minimum=0, maximum=1, include_maximum=False)
        self.base = base
        self.base.requires_grad_(False)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.merged = False
        self.enabled = True

    @property
    def dropout_rate(self) -> float:
        """The dropout probability on the update's input (0 when there is none)."""
        return self.dropout.p if isinstance(self.dropout, nn.Dropout) else 0.0

    @property
    def config(self) -> dict:
        """What defines this layer's function besides its tensors: r, alpha and dropout."""
        return {"r": self.r, "alpha": self.alpha, "dropout": self.dropout_rate}

    def delta_weight(self) -> torch.Tensor:
        """The update this layer adds to W0: (alpha / r) B A, of rank at most r."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged and self.training:
            raise RuntimeError("this LoRA layer is merged into its weight, so training it would "
                               "change nothing but the head: call unmerge_lora(model) first")
        out = self.base(x)
        if self.enabled and not self.merged:
            out = out + self.scaling * F.linear(F.linear(self.dropout(x), self.lora_A), self.lora_B)
        return out

    @torch.no_grad()
    def check_mergeable(self) -> None:
        """Refuse a merge that would damage W0, before anything is written: a switched-off
        layer, or an update that would put NaN or inf into the weight (after a diverged
        training run). Unmerging cannot subtract a NaN again, so W0 would be lost for good."""
        if not self.enabled:
            raise ValueError("this LoRA layer is switched off, so merging would add an update the "
                             "model does not use; switch it on first (set_lora_enabled)")
        bad = int((~torch.isfinite(self.base.weight + self.delta_weight())).sum())
        if bad:
            raise ValueError(f"merging would write {bad} NaN or inf values into W0 (do B or A hold "
                             f"NaN or inf, e.g. after training diverged?); W0 is left unchanged")

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the weight: W = W0 + (alpha / r) B A (no extra work at inference)."""
        if not self.merged:
            self.check_mergeable()
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Subtract the update again, giving back W0 (to floating-point rounding)."""
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def named_lora_layers(model: nn.Module) -> list[tuple[str, LoRALinear]]:
    """Every LoRA layer in a model with its module name."""
    check_instance(model, "model", nn.Module)
    return [(name, module) for name, module in model.named_modules()
            if isinstance(module, LoRALinear)]


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """Every LoRA layer in a model."""
    return [layer for _, layer in named_lora_layers(model)]


def matches_target(name: str, target: str) -> bool:
    """True if the module ``name`` is what ``target`` names: the name itself, or its last
    parts ("layers.0.attention.W_q" matches "W_q" and "attention.W_q")."""
    check_instance(name, "name", str)
    check_instance(target, "target", str)
    return name == target or name.endswith("." + target)


def find_targets(model: nn.Module, targets) -> list[str]:
    """Names of the ``nn.Linear`` modules that ``targets`` select, checking that each target
    selects at least one linear layer."""
    check_instance(model, "model", nn.Module)
    targets = check_names(targets, "targets")
    modules = dict(model.named_modules())
    linear = [name for name, module in modules.items() if isinstance(module, nn.Linear)]
    chosen = []
    for target in targets:
        hits = [name for name in modules if matches_target(name, target)]
        if not hits:
            endings = sorted({name.rsplit(".", 1)[-1] for name in linear})
            raise ValueError(f"no module is named {target!r}; the linear layers of this model "
                             f"end in {endings}")
        for name in hits:
            if not isinstance(modules[name], nn.Linear):
                raise TypeError(f"target {target!r} selects {name!r}, a "
                                f"{type(modules[name]).__name__}; LoRA wraps nn.Linear layers")
        chosen += [name for name in hits if name not in chosen]
    return chosen


def set_module(model: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` in ``model`` at the dotted ``name`` (e.g. ``"layers.0.attention.W_q"``),
    replacing what was there: how LoRA layers (and their variants) take a layer's place."""
    check_instance(model, "model", nn.Module)
    check_instance(name, "name", str)
    check_instance(module, "module", nn.Module)
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


def find_fresh_targets(model: nn.Module, targets, train_also=()) -> tuple[list[str], tuple]:
    """The checks that come before LoRA layers (of any variant) are added: the model has none
    yet, ``targets`` and ``train_also`` name its modules, and no ``train_also`` module holds
    or lies in a target (that would make the target's frozen W0 trainable again). Returns
    both lists of names."""
    check_instance(model, "model", nn.Module)
    already = [name for name, _ in named_lora_layers(model)]
    if already:
        raise ValueError(f"this model already has LoRA layers ({already[0]}, ...); start from a "
                         f"fresh copy of the base model")
    names = find_targets(model, targets)
    train_also = check_module_names(model, train_also, "train_also") if train_also else ()
    refuse_overlap(train_also, names, "one of the targets, whose frozen W0 would train too")
    return names, train_also


def add_lora(model: nn.Module, targets, r: int, alpha: float = DEFAULT_ALPHA,
             dropout: float = 0.0, seed: int = 0, train_also=()) -> list[str]:
    """Wrap the ``targets`` (module names, as PEFT's target_modules) with LoRA in place, freeze
    everything else except the modules named in ``train_also`` (e.g. a task head), and return
    the names of the trainable parameters.

    All or nothing: every target is checked, and every LoRA layer built, before the model is
    changed; on any error the model is left as it was.
    """
    names, train_also = find_fresh_targets(model, targets, train_also)
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    was_trainable = {p: p.requires_grad for p in model.parameters()}
    wrapped = {}
    for name in names:
        try:
            wrapped[name] = LoRALinear(model.get_submodule(name), r, alpha, dropout, generator)
        except (TypeError, ValueError) as problem:
            for parameter, flag in was_trainable.items():   # LoRALinear froze its base
                parameter.requires_grad_(flag)
            raise type(problem)(f"{name}: {problem}") from None
    for name, layer in wrapped.items():
        layer.train(layer.base.training)   # a new module starts in training mode: match the model
        set_module(model, name, layer)
    lora_names = [name for name, _ in model.named_parameters() if ".lora_" in name]
    return freeze_all_except(model, lora_names + list(train_also))


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer's update into its weight (in place). All or nothing: every layer
    is checked first, so one layer with a NaN or inf update leaves every W0 as it was."""
    layers = [(name, layer) for name, layer in named_lora_layers(model) if not layer.merged]
    for name, layer in layers:
        try:
            layer.check_mergeable()
        except ValueError as problem:
            raise ValueError(f"{name}: {problem}") from None
    for _, layer in layers:
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo :func:`merge_lora`."""
    for layer in lora_layers(model):
        layer.unmerge()


def merged_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every LoRA layer replaced by a plain ``nn.Linear`` holding
    W0 + (alpha / r) B A: what you deploy. The original model is not changed. (PEFT's
    ``merge_and_unload`` does the same in place.)"""
    if not lora_layers(model):
        raise ValueError("this model has no LoRA layers to merge")
    merged = copy.deepcopy(model)
    for name, layer in named_lora_layers(merged):
        if layer.enabled and not layer.merged:
            try:
                layer.merge()
            except ValueError as problem:
                raise ValueError(f"{name}: {problem}") from None
        set_module(merged, name, layer.base)
    return merged


def set_lora_enabled(model: nn.Module, enabled: bool) -> None:
    """Switch every (unmerged) LoRA update on or off; off gives back the pretrained model."""
    check_bool(enabled, "enabled")
    layers = lora_layers(model)
    if not layers:
        raise ValueError("this model has no LoRA layers")
    if any(layer.merged for layer in layers):
        raise ValueError("unmerge LoRA before switching it off, or the update stays in the weights")
    for layer in layers:
        layer.enabled = enabled


def lora_config(model: nn.Module) -> dict[str, dict]:
    """r, alpha and dropout of every LoRA layer, by module name (what a task file records)."""
    return {name: layer.config for name, layer in named_lora_layers(model)}


def lora_task_state(model: nn.Module) -> dict:
    """What :func:`save_lora` writes: A, B and any other trainable tensors (the task head),
    the LoRA configuration and the base's fingerprint."""
    layers = lora_layers(model)
    if not layers:
        raise ValueError("this model has no LoRA layers, so there is no LoRA task to save")
    if any(layer.merged for layer in layers):
        raise ValueError("unmerge LoRA before saving: the file holds A and B, not merged weights")
    return task_state(model, "lora", lora_config(model))


def save_lora(model: nn.Module, path, overwrite: bool = False) -> int:
    """Save the LoRA matrices and any other trainable tensors (the task head) with the LoRA
    configuration and the base's fingerprint; return the file size in bytes."""
    return save_torch_file(lora_task_state(model), path, overwrite)


def load_lora(model: nn.Module, path) -> None:
    """Load a LoRA task file into a model wrapped with LoRA at the same layers, with the same
    r, alpha and dropout, on the same base; each refusal names the difference."""
    if any(layer.merged for layer in lora_layers(model)):
        raise ValueError("unmerge LoRA before loading another task")
    load_task_file(model, path, "lora", lora_config(model))
