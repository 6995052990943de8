"""QLoRA's frozen 4-bit base (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized
LLMs", arXiv 2305.14314), written out in plain PyTorch for notebook 08.

QLoRA trains LoRA exactly as before; what changes is the frozen W0, stored in 4 bits:

* **Block-wise absmax quantisation.** The weight is cut into blocks of 64 numbers. Each block
  is divided by its largest absolute value (its *absmax*, kept as a 32-bit constant), which
  maps it onto [-1, 1], and each number is replaced by the index (a 4-bit *code*) of the
  nearest of 16 *levels*. Dequantising multiplies the level back by the absmax. Small blocks
  keep one outlier from spoiling the precision of the whole tensor.
* **NF4 levels** (:func:`nf4_levels`): the 16 levels sit at quantiles of a normal
  distribution, since pretrained weights are roughly normal: each level is then used about
  equally often. :func:`int4_levels` and :func:`fp4_levels` are the evenly spaced and the
  4-bit-float alternatives the paper compares with.
* **Double quantisation** (:func:`quantize_constants`): the 32-bit absmax constants cost
  32 / 64 = 0.5 bits per parameter; quantising them in turn to 8 bits (blocks of 256) brings
  that down to 8 / 64 + 32 / (64 * 256) = 0.127 bits (:func:`memory_bits_per_parameter`).

:class:`NF4Linear` holds a linear layer's weight this way and dequantises it on the fly in
every forward pass; ``variants.add_variant(..., quantize_base=True)`` swaps it in for the
target layers and builds LoRA or a variant on it in one call.
What the course does *not* copy is the speed: bitsandbytes packs and dequantises on the GPU in
fused kernels, while this module favours readable tensor code.
"""

from __future__ import annotations

import torch
from torch import nn

from lora_teach.checks import check_bool, check_instance, check_int, check_real

BLOCK_SIZE = 64              # QLoRA's block size for the weights
CONSTANT_BLOCK_SIZE = 256    # QLoRA's block size for the second quantisation of the constants
CONSTANT_BITS = 32           # an absmax constant before double quantisation (fp32)


def nf4_levels() -> torch.Tensor:
    """The 16 levels of 4-bit NormalFloat (NF4), sorted, from -1 to 1, holding an exact 0.

    Built as in the QLoRA paper and bitsandbytes' ``create_normal_map``: 8 positive levels are
    quantiles of N(0, 1) at probabilities evenly spaced from 0.5 to ``offset``, 7 negative ones
    likewise, plus 0; dividing by the largest gives [-1, 1]. ``offset`` stands in for
    probability 1, whose quantile is infinite: the mean of 1 - 1/(2*15) and 1 - 1/(2*16).

    Why asymmetric (8 positive, 7 negative levels): 4 bits give 16 codes, and the zero of a
    weight (padding, pruned or tiny weights) should be stored exactly. A symmetric set with 0
    has an odd number of values, so one side gets the spare code.
    """
    offset = (1 - 1 / (2 * 15) + 1 - 1 / (2 * 16)) / 2     # 0.96770833..., bitsandbytes: 0.9677083
    positive = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    negative = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    levels = torch.cat([negative, torch.zeros(1, dtype=torch.float64), positive]).sort().values
    return (levels / levels.max()).float()


def int4_levels() -> torch.Tensor:
    """Evenly spaced 4-bit integer levels, symmetric: -7, ..., 7 divided by 7 (15 levels).

    The 16th code (-8) is left unused so that -1 and 1 are both levels and 0 is exact, as in
    symmetric absmax quantisation, which the QLoRA paper compares NF4 with.
    """
    return torch.arange(-7, 8, dtype=torch.float32) / 7


def fp4_levels() -> torch.Tensor:
    """The values of a 4-bit float with 1 sign, 2 exponent and 1 mantissa bit (E2M1, the OCP
    microscaling format): 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives (+0 and -0 are the
    same level, so 15 levels), divided by 6 so that the largest is 1.

    bitsandbytes' FP4 chooses a different exponent bias, so its grid differs; both are
    denser near 0, like NF4, but not placed to match a normal distribution.
    """
    magnitudes = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0])
    return torch.cat([-magnitudes.flip(0)[:-1], magnitudes]) / 6


def check_levels(levels) -> torch.Tensor:
    """``levels`` as a float32 1-D tensor, strictly increasing from -1 to 1, at most 256 long
    (codes are uint8). Absmax quantisation maps each block onto [-1, 1], so both ends must be
    levels."""
    check_instance(levels, "levels", torch.Tensor)
    if levels.dim() != 1 or not 2 <= len(levels) <= 256:
        raise ValueError(f"levels must be a 1-D tensor of 2 to 256 values, got shape {tuple(levels.shape)}")
    levels = levels.detach().float().cpu()
    if not torch.isfinite(levels).all() or not (levels[1:] > levels[:-1]).all():
        raise ValueError("levels must be finite and strictly increasing")
    if levels[0] != -1 or levels[-1] != 1:
        raise ValueError(f"levels must run from -1 to 1 (absmax scaling maps each block onto [-1, 1]), "
                         f"got {levels[0]:g} to {levels[-1]:g}")
    return levels


def quantize_blockwise(x: torch.Tensor, levels: torch.Tensor,
                       block_size: int = BLOCK_SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Block-wise absmax quantisation of ``x``: returns ``(codes, absmax)``.

    ``x`` is flattened and cut into blocks of ``block_size`` (the last one padded with zeros);
    ``absmax`` (float32, one per block) holds each block's largest absolute value, and
    ``codes`` (uint8, one per element of ``x``) the index of the level nearest to
    x / absmax. A block of zeros gets absmax 0 and dequantises to zeros.
    """
    check_instance(x, "x", torch.Tensor)
    if not x.dtype.is_floating_point:
        raise TypeError(f"x must be a floating-point tensor, got {x.dtype}")
    levels = check_levels(levels).to(x.device)
    block_size = check_int(block_size, "block_size", minimum=1)
    flat = x.detach().float().reshape(-1)
    if len(flat) == 0:
        raise ValueError("x is empty: there is nothing to quantise")
    if not torch.isfinite(flat).all():
        raise ValueError("x holds NaN or infinite values, which cannot be quantised")
    padded = torch.cat([flat, flat.new_zeros(-len(flat) % block_size)])
    blocks = padded.reshape(-1, block_size)
    absmax = blocks.abs().amax(dim=1)
    scaled = blocks / torch.where(absmax > 0, absmax, 1.0)[:, None]     # each block now in [-1, 1]
    midpoints = (levels[1:] + levels[:-1]) / 2
    codes = torch.bucketize(scaled, midpoints)                          # index of the nearest level
    return codes.reshape(-1)[:len(flat)].to(torch.uint8), absmax


def dequantize_blockwise(codes: torch.Tensor, absmax: torch.Tensor, levels: torch.Tensor,
                         shape, block_size: int = BLOCK_SIZE) -> torch.Tensor:
    """Undo :func:`quantize_blockwise` (with the same ``levels`` and ``block_size``): level of
    each code times its block's absmax, as a float32 tensor of ``shape``."""
    check_instance(codes, "codes", torch.Tensor)
    check_instance(absmax, "absmax", torch.Tensor)
    if codes.dtype != torch.uint8 or codes.dim() != 1:
        raise TypeError(f"codes must be a 1-D uint8 tensor, got {codes.dtype} with {codes.dim()} dimensions")
    if absmax.dim() != 1 or len(absmax) == 0:
        raise ValueError(f"absmax must be a non-empty 1-D tensor, got shape {tuple(absmax.shape)}")
    levels = check_levels(levels).to(codes.device)
    if len(codes) == 0:
        raise ValueError("codes is empty")
    if int(codes.max()) >= len(levels):
        raise ValueError(f"codes go up to {int(codes.max())}, but there are only {len(levels)} levels")
    shape = torch.Size(check_instance(shape, "shape", (tuple, list)))
    if shape.numel() != len(codes):
        raise ValueError(f"shape {tuple(shape)} holds {shape.numel()} values, but there are {len(codes)} codes")
    block_size = check_int(block_size, "block_size", minimum=1)
    if -(-len(codes) // block_size) != len(absmax):     # ceiling division: the last block may be short
        raise ValueError(f"{len(codes)} codes make {-(-len(codes) // block_size)} blocks of {block_size}, "
                         f"but absmax holds {len(absmax)} constants")
    padded = torch.cat([codes.long(), codes.new_zeros(len(absmax) * block_size - len(codes), dtype=torch.long)])
    values = levels[padded].reshape(-1, block_size) * absmax.float()[:, None]
    return values.reshape(-1)[:len(codes)].reshape(shape)


def int8_levels() -> torch.Tensor:
    """Symmetric 8-bit absmax levels, -127, ..., 127 divided by 127, for double quantisation."""
    return torch.arange(-127, 128, dtype=torch.float32) / 127


def quantize_constants(absmax: torch.Tensor, block_size: int = CONSTANT_BLOCK_SIZE
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Double quantisation: the fp32 absmax constants stored in 8 bits. Returns
    ``(codes, second_absmax, mean)``.

    As the paper, the mean is subtracted first (the constants are all positive, so centring
    them uses the negative levels too), then the result is quantised block-wise (blocks of
    256). The paper uses 8-bit floats there; this module uses the simpler symmetric 8-bit
    absmax levels (:func:`int8_levels`), which cost the same 8 bits.
    """
    check_instance(absmax, "absmax", torch.Tensor)
    if absmax.dim() != 1 or len(absmax) == 0:
        raise ValueError(f"absmax must be a non-empty 1-D tensor, got shape {tuple(absmax.shape)}")
    mean = absmax.float().mean()
    codes, second_absmax = quantize_blockwise(absmax - mean, int8_levels(), block_size)
    return codes, second_absmax, mean


def dequantize_constants(codes: torch.Tensor, second_absmax: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Undo :func:`quantize_constants`: the absmax constants, to 8-bit precision."""
    check_instance(codes, "codes", torch.Tensor)
    check_instance(second_absmax, "second_absmax", torch.Tensor)
    check_instance(mean, "mean", torch.Tensor)
    return dequantize_blockwise(codes, second_absmax, int8_levels(), (len(codes),), CONSTANT_BLOCK_SIZE) + mean


def memory_bits_per_parameter(bits: int = 4, block_size: int = BLOCK_SIZE, double_quant: bool = True,
                              constant_block_size: int = CONSTANT_BLOCK_SIZE) -> float:
    """Bits per parameter of a block-wise quantised weight: the code plus its share of the
    constants. Without double quantisation each block of ``block_size`` carries one 32-bit
    absmax; with it, one 8-bit code instead, plus one 32-bit constant per
    ``constant_block_size`` blocks (QLoRA: 4 + 32/64 = 4.5 bits, or 4 + 8/64 + 32/(64*256))."""
    bits = check_int(bits, "bits", minimum=1)
    block_size = check_int(block_size, "block_size", minimum=1)
    check_bool(double_quant, "double_quant")
    constant_block_size = check_int(constant_block_size, "constant_block_size", minimum=1)
    if not double_quant:
        return bits + CONSTANT_BITS / block_size
    return bits + 8 / block_size + CONSTANT_BITS / (block_size * constant_block_size)


def model_memory_bytes(n_parameters: int, bits_per_parameter: float) -> float:
    """Bytes that ``n_parameters`` weights take at ``bits_per_parameter`` (e.g. 7e9 weights in
    16 bits: 14e9 bytes, 14 GB). The weights only: activations and optimizer state come on top."""
    n_parameters = check_int(n_parameters, "n_parameters", minimum=0)
    bits_per_parameter = check_real(bits_per_parameter, "bits_per_parameter", minimum=0, include_minimum=False)
    return n_parameters * bits_per_parameter / 8


def pack_4bit(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte (the first in the high half), as 4-bit storage really is;
    an odd count is padded with one zero code."""
    check_instance(codes, "codes", torch.Tensor)
    if codes.dtype != torch.uint8 or codes.dim() != 1:
        raise TypeError(f"codes must be a 1-D uint8 tensor, got {codes.dtype} with {codes.dim()} dimensions")
    if len(codes) and int(codes.max()) > 15:
        raise ValueError(f"4-bit codes run from 0 to 15, got {int(codes.max())}")
    codes = torch.cat([codes, codes.new_zeros(len(codes) % 2)])
    return codes[0::2] << 4 | codes[1::2]


def unpack_4bit(packed: torch.Tensor, n: int) -> torch.Tensor:
    """Undo :func:`pack_4bit`: the first ``n`` codes."""
    check_instance(packed, "packed", torch.Tensor)
    n = check_int(n, "n", minimum=0, maximum=2 * len(packed))
    return torch.stack([packed >> 4, packed & 15], dim=1).reshape(-1)[:n]


class NF4Linear(nn.Linear):
    """A frozen linear layer whose weight is stored in NF4 (4 bits) and dequantised on the fly.

    Design: it *is* an ``nn.Linear`` whose ``weight`` is a read-only property giving the
    dequantised weight, so ``nn.Linear.forward`` (x W^T + b), :class:`~lora_teach.lora.LoRALinear`
    (which wraps ``nn.Linear`` layers and reads ``base.weight``) and the variants of
    :mod:`lora_teach.variants` work on it unchanged: QLoRA is LoRA on this base. (PiSSA needs
    the float W0 for its SVD: ``add_variant(..., quantize_base=True)`` quantises its residual.) The stored
    tensors are buffers (never trained): the packed 4-bit codes and the block constants
    (double-quantised by default). The bias stays in full precision and frozen.

    Assigning ``weight`` is refused, so merging LoRA into a 4-bit weight fails with a clear
    message: dequantise first (:meth:`to_linear`).
    """

    def __init__(self, linear: nn.Linear, block_size: int = BLOCK_SIZE, double_quant: bool = True):
        nn.Module.__init__(self)   # not nn.Linear.__init__, which would create a float weight
        check_instance(linear, "linear", nn.Linear)
        if isinstance(linear, NF4Linear):
            raise TypeError("linear is already an NF4Linear; quantise the float layer")
        self.block_size = check_int(block_size, "block_size", minimum=1)
        self.double_quant = check_bool(double_quant, "double_quant")
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach()
        codes, absmax = quantize_blockwise(weight, nf4_levels(), self.block_size)
        self.register_buffer("packed_codes", pack_4bit(codes))
        if double_quant:
            absmax_codes, second_absmax, mean = quantize_constants(absmax)
            self.register_buffer("absmax_codes", absmax_codes)
            self.register_buffer("second_absmax", second_absmax)
            self.register_buffer("absmax_mean", mean)
        else:
            self.register_buffer("absmax", absmax)
        # the 16 levels, in the dtype and on the device the weight is computed in (model.to(...)
        # moves and casts them); not saved: every NF4 layer has the same ones
        self.register_buffer("levels", nf4_levels().to(device=weight.device, dtype=weight.dtype), persistent=False)
        bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        self.register_parameter("bias", bias)

    def block_constants(self) -> torch.Tensor:
        """The absmax of every block (after double quantisation, if used)."""
        if self.double_quant:
            return dequantize_constants(self.absmax_codes, self.second_absmax, self.absmax_mean)
        return self.absmax

    @property
    def weight(self) -> torch.Tensor:
        """The dequantised weight (d_out x d_in), computed afresh from the 4-bit codes."""
        n = self.in_features * self.out_features
        codes = unpack_4bit(self.packed_codes, n)
        shape = (self.out_features, self.in_features)
        weight = dequantize_blockwise(codes, self.block_constants(), self.levels, shape, self.block_size)
        return weight.to(self.levels.dtype)

    @weight.setter
    def weight(self, value) -> None:
        raise AttributeError("an NF4Linear's weight is stored in 4 bits and cannot be assigned (merging LoRA into "
                             "it is refused): dequantise the base first, e.g. replace it by its to_linear()")

    def storage_bytes(self) -> int:
        """Bytes of what the layer stores for its weight: packed codes and block constants."""
        return sum(buffer.numel() * buffer.element_size() for name, buffer in self.named_buffers()
                   if name != "levels")

    def bits_per_parameter(self) -> float:
        """Measured storage of the weight in bits per weight (about 4.127 with double quantisation)."""
        return 8 * self.storage_bytes() / (self.in_features * self.out_features)

    def to_linear(self) -> nn.Linear:
        """A plain ``nn.Linear`` holding the dequantised weight and the bias (frozen)."""
        weight = self.weight
        linear = nn.Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            linear.weight.copy_(weight)
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear.requires_grad_(False)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                f"block_size={self.block_size}, double_quant={self.double_quant}")
