"""Tests for lora_teach.quantization: NF4 levels, block-wise quantisation, double quantisation,
memory arithmetic and the 4-bit linear layer (QLoRA's frozen base)."""

import itertools
import statistics

import pytest
import torch
from torch import nn

from lora_teach import lora, quantization

# QLoRA's appendix / bitsandbytes' NF4 table, as printed there (float32 values)
NF4_TABLE = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
             -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
             0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
             0.7229568362236023, 1.0]
ALL_LEVELS = {"nf4": quantization.nf4_levels, "int4": quantization.int4_levels, "fp4": quantization.fp4_levels}


def normal_linear(d_in=256, d_out=256, std=0.02, seed=0):
    """A linear layer with normally distributed weights, like a pretrained one."""
    layer = nn.Linear(d_in, d_out)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.normal_(0, std, generator=generator)
        layer.bias.normal_(0, std, generator=generator)
    return layer


# ---- the levels ---------------------------------------------------------------------------

def test_nf4_levels_are_16_sorted_values_from_minus_one_to_one_holding_zero():
    levels = quantization.nf4_levels()
    assert levels.shape == (16,) and levels.dtype == torch.float32
    assert (levels[1:] > levels[:-1]).all()
    assert levels[0] == -1 and levels[-1] == 1
    assert (levels == 0).sum() == 1


def test_nf4_levels_match_the_qlora_table():
    table = torch.tensor(NF4_TABLE, dtype=torch.float64)
    assert torch.allclose(quantization.nf4_levels().double(), table, atol=1e-6, rtol=0)


def test_nf4_is_asymmetric_with_8_positive_and_7_negative_levels():
    levels = quantization.nf4_levels()
    assert (levels > 0).sum() == 8 and (levels < 0).sum() == 7
    assert not torch.allclose(levels, -levels.flip(0))


def test_nf4_levels_are_normal_quantiles():
    """Rebuild the levels with Python's own normal distribution (not torch's ndtri)."""
    offset = (1 - 1 / 30 + 1 - 1 / 32) / 2
    normal = statistics.NormalDist()
    positive = [normal.inv_cdf(0.5 + (offset - 0.5) * i / 8) for i in range(1, 9)]
    negative = [-normal.inv_cdf(0.5 + (offset - 0.5) * i / 7) for i in range(1, 8)]
    expected = sorted(negative + [0.0] + positive)
    expected = torch.tensor(expected, dtype=torch.float64) / max(expected)
    assert torch.allclose(quantization.nf4_levels().double(), expected, atol=1e-6, rtol=0)


def test_int4_levels_are_evenly_spaced_and_symmetric():
    levels = quantization.int4_levels()
    assert len(levels) == 15
    assert torch.allclose(levels[1:] - levels[:-1], torch.full((14,), 1 / 7))
    assert torch.equal(levels, -levels.flip(0)) and levels[0] == -1 and levels[7] == 0


def test_fp4_levels_are_the_e2m1_floats_scaled_to_one():
    """Decode every 4-bit pattern (sign, 2 exponent bits with bias 1, 1 mantissa bit)."""
    values = set()
    for sign, exponent, mantissa in itertools.product((1, -1), range(4), range(2)):
        if exponent == 0:
            values.add(sign * mantissa * 0.5)                           # subnormal: 0 and 0.5
        else:
            values.add(sign * (1 + mantissa / 2) * 2.0 ** (exponent - 1))
    expected = torch.tensor(sorted(values)) / max(values)
    assert torch.allclose(quantization.fp4_levels(), expected)
    assert len(quantization.fp4_levels()) == 15


# ---- block-wise quantisation --------------------------------------------------------------

@pytest.mark.parametrize("kind", sorted(ALL_LEVELS))
@pytest.mark.parametrize(("shape", "block_size"), [((7, 13), 64), ((7, 13), 5), ((4, 64), 64), ((1000,), 64)])
def test_dequantised_error_is_within_half_the_largest_gap_times_the_block_absmax(kind, shape, block_size):
    levels = ALL_LEVELS[kind]()
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    x.view(-1)[3] = 9.0   # an outlier: it only spoils its own block
    codes, absmax = quantization.quantize_blockwise(x, levels, block_size)
    assert codes.dtype == torch.uint8 and codes.shape == (x.numel(),)
    n_blocks = -(-x.numel() // block_size)
    flat = torch.cat([x.reshape(-1), torch.zeros(n_blocks * block_size - x.numel())])
    assert torch.equal(absmax, flat.reshape(n_blocks, block_size).abs().amax(dim=1))
    restored = quantization.dequantize_blockwise(codes, absmax, levels, shape, block_size)
    assert restored.shape == x.shape
    gaps = levels[1:] - levels[:-1]
    bound = gaps.max() / 2 * absmax.repeat_interleave(block_size)[:x.numel()].reshape(shape)
    assert ((restored - x).abs() <= bound + 1e-6).all()


def test_values_on_the_levels_come_back_exactly_and_zero_blocks_stay_zero():
    levels = quantization.nf4_levels()
    x = torch.cat([levels * 3.0, torch.zeros(16)])
    codes, absmax = quantization.quantize_blockwise(x, levels, block_size=16)
    assert torch.equal(codes[:16], torch.arange(16, dtype=torch.uint8))
    assert absmax.tolist() == [3.0, 0.0]
    restored = quantization.dequantize_blockwise(codes, absmax, levels, x.shape, 16)
    assert torch.allclose(restored, x, atol=1e-6) and torch.equal(restored[16:], torch.zeros(16))


def test_nf4_loses_less_than_int4_and_fp4_on_normal_data():
    """The paper's reason for NF4: its levels fit normally distributed weights."""
    x = torch.randn(64 * 500, generator=torch.Generator().manual_seed(0))
    errors = {}
    for kind, make in ALL_LEVELS.items():
        codes, absmax = quantization.quantize_blockwise(x, make())
        errors[kind] = float(((quantization.dequantize_blockwise(codes, absmax, make(), x.shape) - x) ** 2).mean())
    assert errors["nf4"] < errors["int4"] and errors["nf4"] < errors["fp4"]


@pytest.mark.parametrize(("call", "error", "name"), [
    (lambda: quantization.quantize_blockwise([1.0, 2.0], quantization.nf4_levels()), TypeError, "x"),
    (lambda: quantization.quantize_blockwise(torch.arange(4), quantization.nf4_levels()), TypeError, "x"),
    (lambda: quantization.quantize_blockwise(torch.tensor([1.0, float("nan")]), quantization.nf4_levels()),
     ValueError, "x"),
    (lambda: quantization.quantize_blockwise(torch.zeros(0), quantization.nf4_levels()), ValueError, "x"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), quantization.nf4_levels(), 0), ValueError, "block_size"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), quantization.nf4_levels(), 2.0), TypeError, "block_size"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), torch.linspace(-1, 1, 257)), ValueError, "levels"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), [-1.0, 1.0]), TypeError, "levels"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), torch.tensor([1.0, -1.0])), ValueError, "levels"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), torch.tensor([-0.5, 0.5])), ValueError, "levels"),
    (lambda: quantization.quantize_blockwise(torch.ones(4), torch.ones(2, 2)), ValueError, "levels"),
])
def test_quantize_refuses_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_dequantize_refuses_bad_input():
    codes, absmax = quantization.quantize_blockwise(torch.randn(10), quantization.nf4_levels(), block_size=4)
    levels = quantization.nf4_levels()
    assert quantization.dequantize_blockwise(codes, absmax, levels, (2, 5), 4).shape == (2, 5)
    with pytest.raises(TypeError, match="codes"):
        quantization.dequantize_blockwise(codes.long(), absmax, levels, (10,), 4)
    with pytest.raises(TypeError, match="absmax"):
        quantization.dequantize_blockwise(codes, absmax.tolist(), levels, (10,), 4)
    with pytest.raises(ValueError, match="absmax"):
        quantization.dequantize_blockwise(codes, absmax[:0], levels, (10,), 4)
    with pytest.raises(ValueError, match="shape"):
        quantization.dequantize_blockwise(codes, absmax, levels, (3, 4), 4)
    with pytest.raises(ValueError, match="levels"):
        quantization.dequantize_blockwise(codes, absmax, torch.tensor([-1.0, 0.0, 1.0]), (10,), 4)
    with pytest.raises(ValueError, match="block_size"):
        quantization.dequantize_blockwise(codes, absmax, levels, (10,), 0)
    with pytest.raises(ValueError, match="absmax holds 7"):
        quantization.dequantize_blockwise(codes, torch.ones(7), levels, (10,), 4)


# ---- double quantisation and memory -------------------------------------------------------

def test_double_quantised_constants_are_within_half_an_8_bit_step():
    absmax = torch.rand(1000, generator=torch.Generator().manual_seed(0)) + 0.5
    codes, second_absmax, mean = quantization.quantize_constants(absmax)
    assert codes.dtype == torch.uint8 and len(codes) == 1000 and len(second_absmax) == 4   # blocks of 256
    assert mean == pytest.approx(float(absmax.mean()))
    restored = quantization.dequantize_constants(codes, second_absmax, mean)
    bound = (1 / 127) / 2 * second_absmax.repeat_interleave(256)[:1000]
    assert ((restored - absmax).abs() <= bound + 1e-6).all()
    assert torch.equal(quantization.int8_levels(), torch.arange(-127, 128) / 127)


def test_quantize_constants_refuses_bad_input():
    with pytest.raises(TypeError, match="absmax"):
        quantization.quantize_constants([1.0, 2.0])
    with pytest.raises(ValueError, match="absmax"):
        quantization.quantize_constants(torch.ones(2, 2))
    with pytest.raises(TypeError, match="mean"):
        quantization.dequantize_constants(torch.zeros(3, dtype=torch.uint8), torch.ones(1), 0.5)


def test_memory_bits_per_parameter_follows_the_paper_arithmetic():
    assert quantization.memory_bits_per_parameter(double_quant=False) - 4 == 32 / 64
    assert quantization.memory_bits_per_parameter() - 4 == pytest.approx(8 / 64 + 32 / (64 * 256))
    assert quantization.memory_bits_per_parameter() - 4 == pytest.approx(0.127, abs=5e-4)
    assert quantization.memory_bits_per_parameter(bits=8, block_size=128, double_quant=False) == 8 + 32 / 128
    assert (quantization.memory_bits_per_parameter(block_size=32, constant_block_size=128)
            == 4 + 8 / 32 + 32 / (32 * 128))


def test_model_memory_bytes_for_7b_and_65b():
    assert quantization.model_memory_bytes(7_000_000_000, 16) == 14e9
    assert quantization.model_memory_bytes(7_000_000_000, 8) == 7e9
    nf4 = quantization.model_memory_bytes(65_000_000_000, quantization.memory_bits_per_parameter())
    assert nf4 == pytest.approx(65e9 * (4 + 8 / 64 + 32 / 16384) / 8)
    assert nf4 < 48e9 < quantization.model_memory_bytes(65_000_000_000, 16)   # QLoRA: 65B fits one 48 GB GPU


@pytest.mark.parametrize(("call", "error", "name"), [
    (lambda: quantization.memory_bits_per_parameter(bits=4.0), TypeError, "bits"),
    (lambda: quantization.memory_bits_per_parameter(block_size=0), ValueError, "block_size"),
    (lambda: quantization.memory_bits_per_parameter(double_quant="yes"), TypeError, "double_quant"),
    (lambda: quantization.memory_bits_per_parameter(constant_block_size=0), ValueError, "constant_block_size"),
    (lambda: quantization.model_memory_bytes(7e9, 16), TypeError, "n_parameters"),
    (lambda: quantization.model_memory_bytes(-1, 16), ValueError, "n_parameters"),
    (lambda: quantization.model_memory_bytes(10, 0), ValueError, "bits_per_parameter"),
    (lambda: quantization.model_memory_bytes(10, "4"), TypeError, "bits_per_parameter"),
])
def test_memory_functions_refuse_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_pack_4bit_round_trip_with_an_odd_count():
    codes = torch.tensor([1, 15, 0, 7, 9], dtype=torch.uint8)
    packed = quantization.pack_4bit(codes)
    assert packed.dtype == torch.uint8 and len(packed) == 3
    assert packed[0] == 1 * 16 + 15
    assert torch.equal(quantization.unpack_4bit(packed, 5), codes)
    with pytest.raises(ValueError, match="4-bit codes"):
        quantization.pack_4bit(torch.tensor([16], dtype=torch.uint8))
    with pytest.raises(TypeError, match="codes"):
        quantization.pack_4bit(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="n"):
        quantization.unpack_4bit(packed, 7)
    with pytest.raises(TypeError, match="packed"):
        quantization.unpack_4bit([1], 1)


# ---- the 4-bit linear layer ---------------------------------------------------------------

@pytest.mark.parametrize("double_quant", [True, False])
def test_nf4_linear_stays_close_to_the_float_layer(double_quant):
    layer = normal_linear()
    quantized = quantization.NF4Linear(layer, double_quant=double_quant)
    x = torch.randn(8, 256, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        exact, approximate = layer(x), quantized(x)
    assert (approximate - exact).norm() / exact.norm() < 0.1
    # each weight within its block's bound (double quantisation adds a little to the absmax)
    _, absmax = quantization.quantize_blockwise(layer.weight, quantization.nf4_levels())
    levels = quantization.nf4_levels()
    bound = (levels[1:] - levels[:-1]).max() / 2 * absmax.repeat_interleave(64).reshape(256, 256)
    assert ((quantized.weight - layer.weight).abs() <= 1.02 * bound + 1e-6).all()
    assert torch.equal(quantized.bias, layer.bias)


def test_nf4_linear_stores_about_4_bits_per_weight():
    with_dq = quantization.NF4Linear(normal_linear())
    without = quantization.NF4Linear(normal_linear(), double_quant=False)
    assert "weight" not in with_dq.state_dict()
    # 4.5 exactly here
    assert without.bits_per_parameter() == quantization.memory_bits_per_parameter(double_quant=False)
    assert with_dq.bits_per_parameter() == pytest.approx(quantization.memory_bits_per_parameter(), abs=0.005)
    assert with_dq.storage_bytes() * 3.8 < 256 * 256 * 2   # about a quarter of 16-bit storage


def test_nf4_linear_is_frozen_and_read_only():
    quantized = quantization.NF4Linear(normal_linear(16, 8))
    assert isinstance(quantized, nn.Linear)
    assert not any(p.requires_grad for p in quantized.parameters())
    with pytest.raises(AttributeError, match="to_linear"):
        quantized.weight = torch.zeros(8, 16)
    with pytest.raises(TypeError, match="linear"):
        quantization.NF4Linear(nn.Conv1d(2, 2, 1))
    with pytest.raises(TypeError, match="already"):
        quantization.NF4Linear(quantized)
    with pytest.raises(ValueError, match="block_size"):
        quantization.NF4Linear(normal_linear(16, 8), block_size=0)
    with pytest.raises(TypeError, match="double_quant"):
        quantization.NF4Linear(normal_linear(16, 8), double_quant=1)


def test_nf4_linear_without_bias_and_in_another_dtype():
    layer = nn.Linear(16, 8, bias=False)
    quantized = quantization.NF4Linear(layer).to(torch.float64)
    assert quantized.bias is None and quantized.weight.dtype == torch.float64
    assert quantized(torch.randn(2, 16, dtype=torch.float64)).dtype == torch.float64
    assert torch.allclose(quantized.to_linear().weight, quantized.weight)


def test_lora_trains_on_an_nf4_base_and_refuses_to_merge_into_it():
    layer = lora.LoRALinear(quantization.NF4Linear(normal_linear(32, 16)), r=4)
    with torch.no_grad():
        layer.lora_B.normal_()
    layer(torch.randn(3, 32)).sum().backward()
    assert layer.lora_A.grad is not None and layer.lora_B.grad is not None
    assert layer.base.bias.grad is None
    with pytest.raises(AttributeError, match="4 bits"):
        layer.merge()
    assert not layer.merged
