"""Intrinsic dimension (notebook 07): fine-tuning in a random d-dimensional subspace.

Li et al. (2018) and Aghajanyan et al. (2021) train a model with only d numbers:

    theta = theta_0 + P z,     theta_0: the pretrained weights (D numbers, frozen),
                               P: a fixed random D x d matrix,  z: length d, starts at zero.

The smallest d that reaches 90% of full fine-tuning's score is the task's *intrinsic
dimension*. If a few hundred directions are enough, a low-rank update (LoRA) is plausible too.

Here every projected tensor W_i of Model M gets a ``torch.nn.utils.parametrize``
parametrization that computes ``W_i = W0_i + reshape(its slice of P z)``. All of them share
one :class:`Subspace`, ``model.subspace``, which holds z (the model's only trainable encoder
parameter) and P. The model stays a ``ModelM``, so :func:`lora_teach.training.train_task` trains
it unchanged; its runs are one method of :mod:`lora_teach.experiments`.

What is projected: every tensor of the encoder (``include="all"``, as in the papers; weights,
embeddings, biases and LayerNorms), or only its matrices and embeddings (``include="matrices"``,
the tensors LoRA can adapt). The task head is *not* projected: it starts random, so it is trained
directly, and its parameters are counted separately. A frozen encoder (d = 0) is then the
baseline that d must beat.

z needs a much larger learning rate than full fine-tuning (about 0.03 to 0.3 for Model M),
and a larger d a smaller one: an Adam step moves every z_j by about lr, so theta moves by
about lr * sqrt(d).

P is never stored for Model M: a dense 96,576 x 1000 matrix would take 386 MB. The Fastfood
transform (Le et al. 2013), which both papers use, gives a random matrix with about the same
properties from O(D) random numbers, and multiplies by it in O(D log D) time.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from lora_teach import adapters, lora
from lora_teach.checks import check_choice, check_instance, check_int
from lora_teach.model import ModelM, check_module_names, freeze_all_except, in_module

PROJECTIONS = ("fastfood", "dense")
INCLUDE = ("all", "matrices")
DENSE_LIMIT_BYTES = 256 * 2**20       # refuse a dense P larger than this
HADAMARD_BLOCK = 64                   # largest small Hadamard matrix hadamard_transform uses


# ---------------------------------------------------------------------------
# The Walsh-Hadamard transform
# ---------------------------------------------------------------------------

def is_power_of_two(n: int) -> bool:
    """True for 1, 2, 4, 8, ..."""
    check_int(n, "n")
    return n >= 1 and n & (n - 1) == 0


@functools.cache
def hadamard_matrix(n: int, dtype: torch.dtype = torch.float32,
                    device: torch.device | str = "cpu") -> torch.Tensor:
    """Sylvester's n x n Hadamard matrix of +-1: H_1 = [1], H_2n = [[H_n, H_n], [H_n, -H_n]].

    Cached, since :func:`hadamard_transform` asks for the same small matrices at every step.
    """
    n = check_int(n, "n", minimum=1)
    if not is_power_of_two(n):
        raise ValueError(f"n must be a power of two, got {n}")
    H = torch.ones(1, 1, dtype=dtype, device=device)
    while H.shape[0] < n:
        H = torch.cat([torch.cat([H, H], 1), torch.cat([H, -H], 1)], 0)
    return H


def hadamard_transform(x: torch.Tensor, block: int = HADAMARD_BLOCK) -> torch.Tensor:
    """H x along the last axis of ``x`` (length n, a power of two), without normalisation,
    so that H (H x) = n x. Differentiable; costs O(n log n), never building the n x n H.

    H_n is a Kronecker product of smaller Hadamard matrices (H_ab = H_a (x) H_b), so each pass
    multiplies one group of index bits by a small H_m and then rotates those bits to the
    front; after every bit has been through once, the order is back. With ``block=2`` this is
    the textbook butterfly (log2 n passes of sums and differences); the default, blocks of up
    to 64, needs only a few passes, and fewer, larger operations run faster in PyTorch.
    """
    check_instance(x, "x", torch.Tensor)
    check_int(block, "block", minimum=2)
    if not is_power_of_two(block):
        raise ValueError(f"block must be a power of two, got {block}")
    n = x.shape[-1]
    if not is_power_of_two(n):
        raise ValueError(f"the last axis of x must have a power-of-two length, got {n}")
    shape = x.shape
    done = 1
    while done < n:
        m = min(block, n // done)
        x = x.reshape(-1, n // m, m) @ hadamard_matrix(m, x.dtype, x.device)  # lowest bits
        x = x.transpose(1, 2)                                                # now highest
        done *= m
    return x.reshape(shape)


# ---------------------------------------------------------------------------
# Random projections z -> P z
# ---------------------------------------------------------------------------

class FastfoodProjection(nn.Module):
    """z (length d) -> P z (length D) for a random D x d matrix P that is never built.

    With n the power of two >= D, Fastfood's n x n matrix is

        V = H G Pi H B,    B: random +-1 signs,  Pi: a random permutation,
                           G: a Gaussian diagonal,  H: the Walsh-Hadamard transform,

    applied to z padded with zeros to length n. Every column of V has norm sqrt(n) ||G||
    (H H = n I), so V / ||G|| has entries of root-mean-square 1, like a standard Gaussian
    matrix. P is its first D rows and d columns divided by sqrt(D): its columns have norm
    about 1. (Le et al.'s extra diagonal S shapes the *row* norms for kernel methods; as in
    Li et al.'s code, one scale is enough here.) The random numbers, O(n) of them, are drawn
    once from ``generator`` and kept in buffers.
    """

    def __init__(self, D: int, d: int, generator: torch.Generator):
        super().__init__()
        self.D = check_int(D, "D", minimum=1)
        self.d = check_int(d, "d", minimum=1, maximum=D)
        n = 2 ** math.ceil(math.log2(D))
        gaussian = torch.randn(n, generator=generator)
        self.register_buffer("signs", torch.randint(0, 2, (n,), generator=generator) * 2.0 - 1.0)
        self.register_buffer("permutation", torch.randperm(n, generator=generator))
        self.register_buffer("gaussian", gaussian)
        self.register_buffer("scale", 1 / (gaussian.norm() * math.sqrt(D)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """P z for z of shape (..., d): shape (..., D)."""
        x = F.pad(z, (0, len(self.signs) - self.d))                   # z padded to length n
        x = hadamard_transform(x * self.signs)[..., self.permutation]  # Pi H B z
        x = hadamard_transform(x * self.gaussian)                      # H G Pi H B z
        return self.scale * x[..., :self.D]

    def extra_repr(self) -> str:
        return f"D={self.D}, d={self.d}, n={len(self.signs)}"


class DenseProjection(nn.Module):
    """z -> P z with P stored: a D x d Gaussian matrix, its columns scaled to norm 1. A
    reference for Fastfood, small enough only for small models or small d."""

    def __init__(self, D: int, d: int, generator: torch.Generator):
        super().__init__()
        matrix = torch.randn(check_int(D, "D", minimum=1), check_int(d, "d", minimum=1, maximum=D),
                             generator=generator)
        self.register_buffer("matrix", matrix / matrix.norm(dim=0))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """P z for z of shape (..., d): shape (..., D)."""
        return z @ self.matrix.T

    def extra_repr(self) -> str:
        D, d = self.matrix.shape
        return f"D={D}, d={d}"


class Subspace(nn.Module):
    """z and the projection P of a model's subspace; :meth:`delta` is P z, all D numbers.

    Every projected tensor needs its own slice of P z. Computing P z once per forward pass,
    not once per tensor, is what makes a training step cheap: the first projected tensor
    (the token embedding, which every forward pass reads first) asks for a fresh P z, and the
    others reuse it while z and the gradient mode are unchanged.
    """

    def __init__(self, d: int, projection: nn.Module, dtype: torch.dtype, device):
        super().__init__()
        self.z = nn.Parameter(torch.zeros(d, dtype=dtype, device=device))
        self.projection = projection.to(dtype=dtype, device=device)
        self._cache = None    # (z's values, gradient mode, P z)

    def __getstate__(self):
        # the cached P z carries autograd history, which copy.deepcopy refuses to copy
        return {**self.__dict__, "_cache": None}

    def delta(self, fresh: bool = False) -> torch.Tensor:
        """P z, recomputed if ``fresh`` or if z or the gradient mode changed since last time."""
        cache = self._cache
        if (fresh or cache is None or cache[1] != torch.is_grad_enabled()
                or not torch.equal(cache[0], self.z.detach())):
            self._cache = cache = (self.z.detach().clone(), torch.is_grad_enabled(),
                                   self.projection(self.z))
        return cache[2]


class SubspaceDelta(nn.Module):
    """The parametrization of one projected tensor: W0 -> W0 + (its slice of P z).

    The subspace is kept as a plain attribute, not a submodule, so the model holds it once
    (as ``model.subspace``) rather than once per tensor.
    """

    def __init__(self, subspace: Subspace, start: int, fresh: bool):
        super().__init__()
        object.__setattr__(self, "subspace", subspace)
        self.start = start
        self.fresh = fresh

    def forward(self, original: torch.Tensor) -> torch.Tensor:
        delta = self.subspace.delta(self.fresh)[self.start:self.start + original.numel()]
        return original + delta.view(original.shape)


# ---------------------------------------------------------------------------
# Adding, measuring and removing the subspace
# ---------------------------------------------------------------------------

def has_subspace(model: nn.Module) -> bool:
    """True if :func:`add_subspace` has been applied to ``model``."""
    check_instance(model, "model", nn.Module)
    return isinstance(getattr(model, "subspace", None), Subspace)


def projected_names(model: ModelM, include: str = "all") -> list[str]:
    """Names of the tensors a subspace moves: every tensor of the encoder (everything but the
    heads), or with ``include="matrices"`` only its weight matrices and embeddings."""
    check_instance(model, "model", ModelM)
    check_choice(include, "include", INCLUDE)
    if has_subspace(model):
        raise ValueError("this model already has a subspace; start from a fresh copy of the "
                         "base model")
    return [name for name, parameter in model.named_parameters()
            if not in_module(name, "heads") and (include == "all" or parameter.dim() == 2)]


def projected_parameter_count(model: ModelM, include: str = "all") -> int:
    """D, the number of weights that P z moves (the rows of P)."""
    check_instance(model, "model", ModelM)
    parameters = dict(model.named_parameters())
    return sum(parameters[name].numel() for name in projected_names(model, include))


def add_subspace(model: ModelM, d: int, seed: int = 0, projection: str = "fastfood",
                 include: str = "all", train_also=()) -> list[str]:
    """Make ``model`` train in a random d-dimensional subspace of its encoder's weights, in
    place: theta = theta_0 + P z, with z (``model.subspace.z``) the only trainable encoder
    parameter. Freeze everything else except the modules in ``train_also`` (the task head),
    and return the names of the trainable parameters.

    z starts at zero, so the model starts exactly as pretrained. P's columns have norm about 1
    (exactly 1 for ``projection="dense"``) and depend only on ``seed`` and D. All or nothing:
    every argument is checked and P built before the model is changed.
    """
    check_instance(model, "model", ModelM)
    if lora.lora_layers(model) or adapters.named_adapters(model):
        raise ValueError("this model has LoRA layers or adapters; a subspace starts from a "
                         "plain copy of the base model")
    names = projected_names(model, include)
    parameters = dict(model.named_parameters())
    D = sum(parameters[name].numel() for name in names)
    d = check_int(d, "d", minimum=1)
    if d > D:
        raise ValueError(f"d must be <= D = {D:,}, the number of weights it moves "
                         f"(include={include!r}), got {d:,}")
    generator = torch.Generator().manual_seed(check_int(seed, "seed", minimum=0))
    check_choice(projection, "projection", PROJECTIONS)
    train_also = check_module_names(model, train_also, "train_also") if train_also else ()
    both = [name for name in names if any(in_module(name, prefix) for prefix in train_also)]
    if both:
        raise ValueError(f"train_also names {both[0]!r}, which the subspace already moves; "
                         f"train_also is for modules outside it, such as the task head")
    if projection == "dense":
        size = D * d * 4
        if size > DENSE_LIMIT_BYTES:
            raise ValueError(f"projection='dense' would store a {D:,} x {d:,} matrix "
                             f"({size / 2**20:,.0f} MB, more than {DENSE_LIMIT_BYTES // 2**20} MB); "
                             f"use projection='fastfood'")
        projector = DenseProjection(D, d, generator)
    else:
        projector = FastfoodProjection(D, d, generator)

    first = parameters[names[0]]
    model.subspace = Subspace(d, projector, first.dtype, first.device)
    start = 0
    for name in names:
        owner, _, tensor_name = name.rpartition(".")
        # the first tensor a forward pass reads (the token embedding) recomputes P z
        parametrize.register_parametrization(model.get_submodule(owner), tensor_name,
                                             SubspaceDelta(model.subspace, start, name == names[0]))
        start += parameters[name].numel()
    return freeze_all_except(model, ["subspace", *train_also])


def _subspace(model: ModelM) -> Subspace:
    """The model's subspace, or a ValueError saying how to add one."""
    check_instance(model, "model", ModelM)
    if not has_subspace(model):
        raise ValueError("this model has no subspace: call add_subspace(model, d) first")
    return model.subspace


@torch.no_grad()
def merged_subspace_copy(model: ModelM) -> ModelM:
    """A plain ``ModelM`` holding theta_0 + P z (no parametrizations, no z): what you deploy,
    and what the course's other measurements take. The original model is not changed; the
    requires_grad flags are kept (the encoder frozen).

    (A new ModelM is filled with the merged tensors. Removing the parametrizations from a
    ``copy.deepcopy`` would also strip them from the original: PyTorch's deep copy shares the
    parametrized class between the two.)
    """
    z = _subspace(model).z
    with torch.random.fork_rng(devices=[]):   # the new model's random start leaves no trace
        merged = ModelM(model.config).to(device=z.device, dtype=z.dtype)
    state = {}
    for name in merged.state_dict():
        owner, _, tensor_name = name.rpartition(".")
        state[name] = getattr(model.get_submodule(owner), tensor_name)
    merged.load_state_dict(state)
    trainable = {name: p.requires_grad for name, p in model.named_parameters()}
    for name, parameter in merged.named_parameters():
        parameter.requires_grad = trainable.get(name, False)
    return merged.train(model.training)
