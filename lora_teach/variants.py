"""LoRA's successors for notebook 08, each built on the course's :class:`~lora_teach.lora.LoRALinear`.

Every variant keeps W0 frozen and changes one thing about the update beside it:

* **rsLoRA** (:class:`RsLoRALinear`): the scaling alpha / sqrt(r) instead of alpha / r, so that
  large ranks still learn.
* **DoRA** (:class:`DoRALinear`): split the weight into a length per output feature (trained
  directly) and a direction (trained with LoRA).
* **PiSSA** (:class:`PiSSALinear`): start A and B at W0's top-r singular vectors, and freeze the
  rest of W0, instead of starting with B = 0.
* **VeRA** (:class:`VeRALinear`): one frozen random pair A, B shared by all layers; each layer
  trains only two scaling vectors.
* **LoRA+** (:func:`loraplus_parameter_groups`): the same layers, but B learns faster than A.

:func:`add_variant` wraps a model's layers as :func:`~lora_teach.lora.add_lora` does; every
layer is a ``LoRALinear``, so ``merge_lora``, ``merged_copy``, ``set_lora_enabled`` and
``save_lora`` work for all of them. QLoRA is not a layer but a frozen 4-bit base
(:mod:`lora_teach.quantization`): ``add_variant(..., quantize_base=True)`` builds any variant on
NF4 copies of the targets (QLoRA, QDoRA, ..., and QPiSSA, which quantises PiSSA's residual);
merging into a 4-bit weight is refused (dequantise first). :func:`copy_variant_to_peft` gives a
Hugging Face PEFT model the same tensors, to check that both compute the same function.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from lora_teach.checks import check_bool, check_choice, check_instance, check_int, check_real
from lora_teach.lora import DEFAULT_ALPHA, LoRALinear, find_fresh_targets, find_targets, named_lora_layers, set_module
from lora_teach.model import freeze_all_except
from lora_teach.quantization import NF4Linear

VARIANTS = ("LoRA", "rsLoRA", "DoRA", "PiSSA", "VeRA")
VERA_D_INITIAL = 0.1   # VeRA's start value of lambda_d, as PEFT's d_initial


class RsLoRALinear(LoRALinear):
    """rank-stabilised LoRA (Kalajdzievski 2023, "A Rank Stabilization Scaling Factor for
    Fine-Tuning with LoRA", arXiv 2312.03732):

        h = W0 x + (alpha / sqrt(r)) * B A x

    With alpha / r, the update shrinks as r grows and large ranks learn no better than small
    ones; the paper shows alpha / sqrt(r) keeps the size of the update and of its gradients
    stable in r. Everything else is LoRA (PEFT: ``LoraConfig(use_rslora=True)``).
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float = DEFAULT_ALPHA,
                 dropout: float = 0.0, generator: torch.Generator | None = None):
        super().__init__(base, r, alpha, dropout, generator)
        self.scaling = self.alpha / math.sqrt(self.r)

    @property
    def config(self) -> dict:
        return {"variant": "rsLoRA", **super().config}


class DoRALinear(LoRALinear):
    """Weight-decomposed LoRA (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation",
    arXiv 2402.09353):

        W' = m * (W0 + s B A) / ||W0 + s B A||_c,      h = W' x + b

    ``||.||_c`` is the norm of each output feature's row of the (d_out x d_in) weight, so
    (W0 + s B A) / ||.||_c is a direction per output feature and the trainable
    ``lora_magnitude`` m (length d_out) its length. m starts at ||W0||_c, so the layer starts
    as W0. As the paper (Section 4.3) and PEFT, the norm is treated as a constant in the
    backward pass (detached): gradients flow through m and through the direction's numerator.

    As PEFT, the bias is added after the rescaling (not multiplied by m / ||.||_c), and the
    forward pass is written as W0 x + b + (m/||.|| - 1) W0 x + (m/||.||) s B A x, which is the
    same thing without forming W'. Merging folds the whole W' into the weight: W' is not
    W0 plus a low-rank term, so a copy of W0 is kept while merged and unmerging restores it.
    Trainable parameters per layer: r (d_in + d_out) + d_out.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float = DEFAULT_ALPHA,
                 dropout: float = 0.0, generator: torch.Generator | None = None):
        super().__init__(base, r, alpha, dropout, generator)
        self.unmerged_weight = None   # W0 while merged
        self.lora_magnitude = nn.Parameter(self.weight_norm())   # B = 0, so this is ||W0||_c

    @property
    def config(self) -> dict:
        return {"variant": "DoRA", **super().config}

    def original_weight(self) -> torch.Tensor:
        """W0, the frozen weight (kept aside while merged)."""
        return self.unmerged_weight if self.merged else self.base.weight

    def weight_norm(self) -> torch.Tensor:
        """||W0 + s B A||_c, one norm per output feature, without gradient (detached)."""
        with torch.no_grad():
            return torch.linalg.norm(self.original_weight() + super().delta_weight(), dim=1)

    def adapted_weight(self) -> torch.Tensor:
        """W' = m * (W0 + s B A) / ||W0 + s B A||_c."""
        direction = self.original_weight() + super().delta_weight()
        return (self.lora_magnitude / self.weight_norm())[:, None] * direction

    def delta_weight(self) -> torch.Tensor:
        """What DoRA changes: W' - W0 (not of low rank: the magnitude rescales every row)."""
        return self.adapted_weight() - self.original_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged and self.training:
            raise RuntimeError("this DoRA layer is merged into its weight: call unmerge_lora(model) before training")
        out = self.base(x)   # W0 x + b
        if self.enabled and not self.merged:
            x = self.dropout(x)
            factor = self.lora_magnitude / self.weight_norm()     # m / ||W0 + s B A||_c, a constant for backward
            lora = self.scaling * F.linear(F.linear(x, self.lora_A), self.lora_B)
            out = out + (factor - 1) * F.linear(x, self.base.weight) + factor * lora
        return out

    @torch.no_grad()
    def merge(self) -> None:
        """Replace the weight by W' (keeping a copy of W0 for :meth:`unmerge`)."""
        if not self.merged:
            original = self.base.weight.detach().clone()
            super().merge()   # base.weight += W' - W0
            self.unmerged_weight = original

    @torch.no_grad()
    def unmerge(self) -> None:
        """Put W0 back exactly."""
        if self.merged:
            self.base.weight.copy_(self.unmerged_weight)
            self.unmerged_weight = None
            self.merged = False


class PiSSALinear(LoRALinear):
    """Principal singular values and vectors adaptation (Meng et al. 2024, "PiSSA: Principal
    Singular Values and Singular Vectors Adaptation of Large Language Models", arXiv 2404.02948).

    With W0 = U S V^T (singular values in decreasing order) and s = alpha / r:

        B = U_r sqrt(S_r / s),   A = sqrt(S_r / s) V_r^T,   so  s B A = U_r S_r V_r^T
        base weight = W0 - s B A (the residual, frozen)

    The model starts unchanged (to float rounding), but training moves W0's principal part
    instead of a zero update; PEFT does the same (``init_lora_weights="pissa"``). The layer
    holds a *copy* of the base with the residual weight, so the layer passed in is not changed.

    ``quantize_residual=True`` stores the residual in NF4 (the paper's QPiSSA): the principal
    part stays in A and B at full precision, so less of W0 is lost than by quantising W0 itself.
    The SVD needs the float W0, so an already quantised base is refused.
    """

    def __init__(self, base: nn.Linear, r: int, alpha: float = DEFAULT_ALPHA,
                 dropout: float = 0.0, generator: torch.Generator | None = None,
                 quantize_residual: bool = False):
        check_instance(base, "base", nn.Linear)
        if isinstance(base, NF4Linear):
            raise TypeError("base is an NF4Linear, but PiSSA's SVD needs the float W0: pass the float layer "
                            "with quantize_residual=True (QPiSSA)")
        check_bool(quantize_residual, "quantize_residual")
        super().__init__(copy.deepcopy(base), r, alpha, dropout, generator)
        weight = self.base.weight.detach().float()
        U, S, Vh = torch.linalg.svd(weight, full_matrices=False)
        root = torch.sqrt(S[:self.r] / self.scaling)
        B, A = U[:, :self.r] * root, root[:, None] * Vh[:self.r]
        with torch.no_grad():
            self.lora_B.copy_(B)
            self.lora_A.copy_(A)
            self.base.weight.copy_(weight - self.scaling * B @ A)
        if quantize_residual:
            self.base = NF4Linear(self.base)

    @property
    def config(self) -> dict:
        return {"variant": "PiSSA", **super().config}


class VeRAProjections(nn.Module):
    """VeRA's frozen random matrices, shared by every adapted layer: A (r x d_in) and
    B (d_out x r), for the largest d_in and d_out among the layers; each layer uses the top-left
    slice it needs (as PEFT). Drawn from ``seed`` with PEFT's initialisation (Kaiming uniform,
    A first), so the same seed gives PEFT's ``vera_A``/``vera_B`` (its ``projection_prng_key``).
    Buffers, not parameters: they are never trained and need not be saved (the seed rebuilds them).
    """

    def __init__(self, r: int, d_in: int, d_out: int, seed: int = 0):
        super().__init__()
        self.r = check_int(r, "r", minimum=1)
        self.seed = check_int(seed, "seed", minimum=0)
        generator = torch.Generator().manual_seed(self.seed)
        A = torch.empty(self.r, check_int(d_in, "d_in", minimum=1))
        B = torch.empty(check_int(d_out, "d_out", minimum=1), self.r)
        nn.init.kaiming_uniform_(A, generator=generator)
        nn.init.kaiming_uniform_(B, generator=generator)
        self.register_buffer("vera_A", A)
        self.register_buffer("vera_B", B)

    def projections(self, d_in: int, d_out: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The slices a d_out x d_in layer uses: A[:, :d_in] and B[:d_out, :]."""
        return self.vera_A[:, :d_in], self.vera_B[:d_out]

    def extra_repr(self) -> str:
        return f"r={self.r}, d_in={self.vera_A.shape[1]}, d_out={self.vera_B.shape[0]}, seed={self.seed}"


class VeRALinear(LoRALinear):
    """Vector-based random matrix adaptation (Kopiczko et al. 2024, "VeRA: Vector-based Random
    Matrix Adaptation", arXiv 2310.11454):

        h = W0 x + lambda_b * (B (lambda_d * (A x)))

    A and B are frozen, random and shared by all layers (:class:`VeRAProjections`); each layer
    trains only ``vera_lambda_d`` (length r, starts at ``d_initial``) and ``vera_lambda_b``
    (length d_out, starts at 0, so the layer starts as W0): r + d_out parameters, whatever
    d_in is. Since nothing is learned per weight entry, r may exceed d_in and d_out (the paper
    uses r = 256 and more). There is no alpha: the vectors set the scale.

    It is a ``LoRALinear`` so the course's merge, switch and save functions apply, but it has
    no A and B of its own, so LoRALinear's ``__init__`` (which draws them) is skipped; its
    ``_wrap`` sets up the rest.
    """

    def __init__(self, base: nn.Linear, shared: VeRAProjections, d_initial: float = VERA_D_INITIAL,
                 dropout: float = 0.0):
        nn.Module.__init__(self)   # not LoRALinear.__init__: VeRA has no per-layer A and B
        check_instance(base, "base", nn.Linear)
        check_instance(shared, "shared", VeRAProjections)
        if shared.vera_A.shape[1] < base.in_features or shared.vera_B.shape[0] < base.out_features:
            raise ValueError(f"shared holds projections for layers up to {shared.vera_B.shape[0]}x"
                             f"{shared.vera_A.shape[1]}, too small for this "
                             f"{base.out_features}x{base.in_features} layer")
        self.d_initial = _check_d_initial(d_initial)
        self._wrap(base, dropout)
        self.shared = shared
        self.r = shared.r
        weight = base.weight
        self.vera_lambda_d = nn.Parameter(torch.full((self.r,), self.d_initial, device=weight.device,
                                                     dtype=weight.dtype))
        self.vera_lambda_b = nn.Parameter(torch.zeros(base.out_features, device=weight.device, dtype=weight.dtype))

    @property
    def config(self) -> dict:
        return {"variant": "VeRA", "r": self.r, "dropout": self.dropout_rate, "seed": self.shared.seed}

    def delta_weight(self) -> torch.Tensor:
        """diag(lambda_b) B diag(lambda_d) A, with this layer's slices of the shared A and B."""
        A, B = self.shared.projections(self.base.in_features, self.base.out_features)
        return (self.vera_lambda_b[:, None] * B) @ (self.vera_lambda_d[:, None] * A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.merged and self.training:
            raise RuntimeError("this VeRA layer is merged into its weight: call unmerge_lora(model) before training")
        out = self.base(x)
        if self.enabled and not self.merged:
            A, B = self.shared.projections(self.base.in_features, self.base.out_features)
            out = out + self.vera_lambda_b * F.linear(self.vera_lambda_d * F.linear(self.dropout(x), A), B)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, d_initial={self.d_initial:g}"


def _check_d_initial(d_initial) -> float:
    """VeRA's start value of lambda_d: a finite number, not 0. lambda_b starts at 0, and each
    vector's gradient is proportional to the other, so with lambda_d = 0 too both gradients
    stay 0 and VeRA never learns (the trap of exercise 05.2)."""
    d_initial = check_real(d_initial, "d_initial")
    if d_initial == 0:
        raise ValueError(f"d_initial must not be 0: lambda_b starts at 0, so both vectors' gradients "
                         f"would stay 0 and VeRA would never learn; PEFT's default is {VERA_D_INITIAL}")
    return d_initial


LAYERS = {"LoRA": LoRALinear, "rsLoRA": RsLoRALinear, "DoRA": DoRALinear, "PiSSA": PiSSALinear}


def target_shapes(model: nn.Module, targets) -> list[tuple[int, int]]:
    """(d_out, d_in) of every linear layer that ``targets`` select, in model order."""
    return [(model.get_submodule(name).out_features, model.get_submodule(name).in_features)
            for name in find_targets(model, targets)]


def add_variant(model: nn.Module, variant: str, targets, r: int, alpha: float = DEFAULT_ALPHA,
                dropout: float = 0.0, seed: int = 0, train_also=(), d_initial: float = VERA_D_INITIAL,
                quantize_base: bool = False) -> list[str]:
    """Wrap the ``targets`` with a LoRA ``variant`` ("LoRA", "rsLoRA", "DoRA", "PiSSA" or "VeRA")
    in place, freeze everything except the variant's trainable tensors and ``train_also``, and
    return the trainable parameter names: :func:`~lora_teach.lora.add_lora` for every variant
    ("LoRA" gives exactly add_lora's layers for the same seed).

    ``seed`` draws the A matrices (the VeRA projections for VeRA); ``alpha`` only LoRA's scaling
    (VeRA refuses any but the default), ``d_initial`` only VeRA's vectors. ``quantize_base=True``
    stores each target's frozen W0 in NF4
    (:class:`~lora_teach.quantization.NF4Linear`, blocks of 64, double quantisation) before
    the variant is built on it, so that DoRA's magnitude and the starting output use the 4-bit
    W0 the layer will train with; PiSSA instead quantises its residual after the SVD (QPiSSA).
    All or nothing: every layer is built before the model is changed.
    """
    check_choice(variant, "variant", VARIANTS)
    names, train_also = find_fresh_targets(model, targets, train_also)
    seed = check_int(seed, "seed", minimum=0)
    alpha = check_real(alpha, "alpha", minimum=0, include_minimum=False)
    if variant == "VeRA" and alpha != DEFAULT_ALPHA:
        raise ValueError("alpha is a setting of LoRA's scaling, not of VeRA (its two vectors set the scale)")
    d_initial = check_real(d_initial, "d_initial")
    if variant != "VeRA" and d_initial != VERA_D_INITIAL:
        raise ValueError(f"d_initial is a setting of VeRA, not of {variant}")
    if variant == "VeRA":
        _check_d_initial(d_initial)
    check_bool(quantize_base, "quantize_base")
    generator = torch.Generator().manual_seed(seed)
    was_trainable = {p: p.requires_grad for p in model.parameters()}
    wrapped = {}
    if variant == "VeRA":
        shapes = target_shapes(model, names)
        weight = model.get_submodule(names[0]).weight
        shared = VeRAProjections(r, max(d_in for _, d_in in shapes), max(d_out for d_out, _ in shapes), seed)
        shared.to(device=weight.device, dtype=weight.dtype)
    for name in names:
        base = model.get_submodule(name)
        try:
            if quantize_base and variant != "PiSSA":
                base = NF4Linear(base)
            if variant == "VeRA":
                wrapped[name] = VeRALinear(base, shared, d_initial, dropout)
            elif variant == "PiSSA":
                wrapped[name] = PiSSALinear(base, r, alpha, dropout, generator, quantize_residual=quantize_base)
            else:
                wrapped[name] = LAYERS[variant](base, r, alpha, dropout, generator)
        except (TypeError, ValueError) as problem:
            for parameter, flag in was_trainable.items():   # the layers froze their bases
                parameter.requires_grad_(flag)
            raise type(problem)(f"{name}: {problem}") from None
    for name, layer in wrapped.items():
        layer.train(model.get_submodule(name).training)   # a new module starts in training mode
        set_module(model, name, layer)
    own = [f"{name}.{p}" for name, layer in wrapped.items() for p, _ in layer.named_parameters()
           if not p.startswith("base.")]
    return freeze_all_except(model, own + list(train_also))


def trainable_count(variant: str, shapes, r: int) -> int:
    """Trainable parameters a variant adds to layers of ``shapes`` ((d_out, d_in) pairs), by
    formula: LoRA, rsLoRA, PiSSA r (d_in + d_out) per layer; DoRA that plus d_out (the
    magnitude); VeRA r + d_out (its two vectors; the shared A and B are frozen,
    :func:`vera_shared_count`). As the layers themselves, only VeRA accepts an r larger than a
    layer's min(d_in, d_out)."""
    check_choice(variant, "variant", VARIANTS)
    shapes = _check_shapes(shapes)
    r = check_int(r, "r", minimum=1)
    if variant == "VeRA":
        return sum(r + d_out for d_out, _ in shapes)
    d_out, d_in = min(shapes, key=min)
    if r > min(d_out, d_in):
        raise ValueError(f"r must be between 1 and min(d_in, d_out) = {min(d_out, d_in)} for a "
                         f"{d_out}x{d_in} layer, got {r} (only VeRA's r may be larger)")
    extra = 1 if variant == "DoRA" else 0
    return sum(r * (d_in + d_out) + extra * d_out for d_out, d_in in shapes)


def vera_shared_count(shapes, r: int) -> int:
    """Numbers in VeRA's frozen shared A (r x largest d_in) and B (largest d_out x r)."""
    shapes = _check_shapes(shapes)
    r = check_int(r, "r", minimum=1)
    return r * max(d_in for _, d_in in shapes) + max(d_out for d_out, _ in shapes) * r


def _check_shapes(shapes) -> list[tuple[int, int]]:
    """``shapes`` as a non-empty list of (d_out, d_in) pairs of positive integers."""
    if isinstance(shapes, (str, bytes)) or not hasattr(shapes, "__iter__"):
        raise TypeError(f"shapes must be a list of (d_out, d_in) pairs, got {type(shapes).__name__}")
    shapes = list(shapes)
    if not shapes:
        raise ValueError("shapes is empty: give at least one (d_out, d_in) pair")
    for shape in shapes:
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise TypeError(f"shapes must hold (d_out, d_in) pairs, got {shape!r}")
        for size in shape:
            check_int(size, "a size in shapes", minimum=1)
    return [(int(d_out), int(d_in)) for d_out, d_in in shapes]


def loraplus_parameter_groups(model: nn.Module, lr: float, ratio: float = 16.0) -> list[dict]:
    """LoRA+ (Hayou et al. 2024, "LoRA+: Efficient Low Rank Adaptation of Large Models",
    arXiv 2402.12354): optimizer groups in which B learns ``ratio`` times faster than A.

    In wide layers, A and B should not share a learning rate: the paper shows lr_B = ratio x lr_A
    (ratio about 16) learns faster. As the authors' code and PEFT's
    ``create_loraplus_optimizer``, the fast group holds every trainable ``lora_B`` and every
    trainable 1-D tensor (biases, DoRA's magnitude, LayerNorm weights); all other trainable
    tensors train at ``lr``. (PEFT also sets a weight decay per group, 0 by default.)
    """
    check_instance(model, "model", nn.Module)
    lr = check_real(lr, "lr", minimum=0, include_minimum=False)
    ratio = check_real(ratio, "ratio", minimum=0, include_minimum=False)
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    if not any("lora_B" in name for name, _ in trainable):
        raise ValueError("LoRA+ sets the learning rate of B, but no trainable parameter of this model is a lora_B: "
                         "add LoRA (or rsLoRA, DoRA, PiSSA) first")
    slow = [p for name, p in trainable if not ("lora_B" in name or p.dim() == 1)]
    fast = [p for name, p in trainable if "lora_B" in name or p.dim() == 1]
    groups = [{"params": slow, "lr": lr}, {"params": fast, "lr": lr * ratio}]
    return [group for group in groups if group["params"]]


def copy_variant_to_peft(model: nn.Module, peft_model: nn.Module, adapter: str = "default") -> int:
    """Give every PEFT LoRA or VeRA layer the tensors of the course's layer at the same place:
    A and B (and, for PiSSA, the residual base weight; for DoRA, the magnitude), or VeRA's two
    vectors after checking that both share the same A and B. Returns how many layers were
    copied. In the style of :func:`lora_teach.real_model.copy_lora_to_peft`."""
    check_instance(model, "model", nn.Module)
    check_instance(peft_model, "peft_model", nn.Module)
    check_instance(adapter, "adapter", str)
    ours = dict(named_lora_layers(model))
    if not ours:
        raise ValueError("model has no LoRA or variant layers to copy")
    copied = 0
    with torch.no_grad():
        for name, module in peft_model.named_modules():
            is_lora = isinstance(getattr(module, "lora_A", None), nn.ModuleDict)
            is_vera = isinstance(getattr(module, "vera_lambda_d", None), nn.ParameterDict)
            if not (is_lora or is_vera):
                continue
            match = [n for n in ours if name == n or name.endswith("." + n)]
            if len(match) != 1:
                raise ValueError(f"PEFT layer {name!r} has no single course layer to copy from (found {match})")
            layer = ours[match[0]]
            present = list(module.vera_lambda_d if is_vera else module.lora_A)
            if adapter not in present:
                raise ValueError(f"adapter must be one of PEFT layer {name!r}'s adapters {present}, got {adapter!r}")
            if is_vera != isinstance(layer, VeRALinear):
                raise ValueError(f"{name}: one side is VeRA and the other is not")
            if is_vera:
                A, B = layer.shared.projections(layer.base.in_features, layer.base.out_features)
                theirs_A = module.vera_A[adapter][:, :layer.base.in_features]
                theirs_B = module.vera_B[adapter][:layer.base.out_features]
                if not (torch.equal(A.cpu(), theirs_A.cpu()) and torch.equal(B.cpu(), theirs_B.cpu())):
                    raise ValueError(f"{name}: PEFT's shared vera_A/vera_B differ from the course's; "
                                     f"build both from the same seed (PEFT: projection_prng_key)")
                module.vera_lambda_d[adapter].copy_(layer.vera_lambda_d)
                module.vera_lambda_b[adapter].copy_(layer.vera_lambda_b)
            else:
                if module.r[adapter] != layer.r or not math.isclose(module.scaling[adapter], layer.scaling):
                    raise ValueError(f"{name}: PEFT has r={module.r[adapter]}, scaling {module.scaling[adapter]:g}; "
                                     f"the course layer r={layer.r}, scaling {layer.scaling:g}")
                if isinstance(layer, DoRALinear) != bool(module.use_dora.get(adapter, False)):
                    raise ValueError(f"{name}: one side uses DoRA and the other does not")
                module.lora_A[adapter].weight.copy_(layer.lora_A)
                module.lora_B[adapter].weight.copy_(layer.lora_B)
                if isinstance(layer, DoRALinear):
                    module.lora_magnitude_vector[adapter].weight.copy_(layer.lora_magnitude)
                if isinstance(layer, PiSSALinear):
                    module.get_base_layer().weight.copy_(layer.base.weight)
            copied += 1
    if copied != len(ours):
        raise ValueError(f"copied {copied} layers but the course model has {len(ours)}")
    return copied
