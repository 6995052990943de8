"""Tests for lora_teach.variants: rsLoRA, DoRA, PiSSA, VeRA and LoRA+, each checked for its
defining property and against Hugging Face PEFT on the same weights."""

import copy
import math

import numpy as np
import pytest
import torch
from helpers import count_parameters, perturb_trainable, tiny_ids
from torch import nn

from lora_teach import lora, variants
from lora_teach.quantization import NF4Linear
from lora_teach.real_model import quiet_hugging_face

TARGETS = ("query", "value", "ffn", "out")   # of the tiny model below: three different shapes
QV = ("W_q", "W_v")                           # of Model M
PEFT_TOLERANCE = 1e-5
PEFT_PREFIX = "base_model.model."            # what PEFT puts before a wrapped model's names


class Block(nn.Module):
    """Attention-like and feed-forward linear layers, named as PEFT's examples name them."""

    def __init__(self):
        super().__init__()
        self.query, self.value = nn.Linear(16, 16), nn.Linear(16, 16)
        self.ffn, self.out = nn.Linear(16, 24), nn.Linear(24, 16)

    def forward(self, x):
        x = x + self.value(torch.tanh(self.query(x)))
        return x + self.out(torch.relu(self.ffn(x)))


class Tiny(nn.Module):
    """Two blocks and a head: small enough for PEFT and the course to run in milliseconds."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([Block(), Block()])
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return self.head(x)


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return Tiny().eval()


@pytest.fixture
def x():
    return torch.randn(6, 16, generator=torch.Generator().manual_seed(3))


def adapted(base, variant, r=4, trained=True, **kwargs):
    """A copy of ``base`` with the variant, its trainable tensors moved as training would."""
    model = copy.deepcopy(base)
    variants.add_variant(model, variant, TARGETS, r, **kwargs)
    return perturb_trainable(model) if trained else model


def peft_model(base, variant, r=4, alpha=8.0):
    """The same variant built by PEFT on a copy of ``base``."""
    quiet_hugging_face()
    from peft import LoraConfig, VeraConfig, get_peft_model

    if variant == "VeRA":
        config = VeraConfig(r=r, target_modules=list(TARGETS), projection_prng_key=0, d_initial=0.1)
    else:
        config = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(TARGETS), use_rslora=variant == "rsLoRA",
                            use_dora=variant == "DoRA", init_lora_weights="pissa" if variant == "PiSSA" else True)
    return get_peft_model(copy.deepcopy(base), config).eval()


def max_difference(a, b):
    return float((a - b).detach().abs().max())


# ---- add_variant: the shared entry point ---------------------------------------------------

def test_variant_lora_is_exactly_add_lora(tiny_base):
    ours, reference = copy.deepcopy(tiny_base), copy.deepcopy(tiny_base)
    names = variants.add_variant(ours, "LoRA", QV, r=4, seed=3, train_also=["heads.ner"])
    assert names == lora.add_lora(reference, QV, r=4, seed=3, train_also=["heads.ner"])
    for (name, a), (_, b) in zip(ours.state_dict().items(), reference.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("variant", ["LoRA", "rsLoRA", "DoRA", "VeRA"])
def test_every_variant_starts_exactly_as_the_base_model(tiny_base, variant):
    model = copy.deepcopy(tiny_base)
    variants.add_variant(model, variant, QV, r=4, train_also=["heads.ner"])
    with torch.no_grad():
        assert torch.equal(model("ner", tiny_ids()), tiny_base("ner", tiny_ids()))


def test_pissa_starts_as_the_base_model_to_float_rounding(tiny_base):
    model = copy.deepcopy(tiny_base)
    variants.add_variant(model, "PiSSA", QV, r=4)
    with torch.no_grad():
        assert torch.allclose(model("ner", tiny_ids()), tiny_base("ner", tiny_ids()), atol=1e-5)
    assert not torch.equal(model.layers[0].attention.W_q.base.weight, tiny_base.layers[0].attention.W_q.weight)


@pytest.mark.parametrize("variant", variants.VARIANTS)
def test_counted_trainable_parameters_match_the_formula(tiny, variant):
    model = copy.deepcopy(tiny)
    names = variants.add_variant(model, variant, TARGETS, r=4)
    shapes = variants.target_shapes(tiny, TARGETS)
    assert count_parameters(model, trainable_only=True) == variants.trainable_count(variant, shapes, 4)
    assert len(names) == len(shapes) * (3 if variant == "DoRA" else 2)
    assert count_parameters(model) - count_parameters(tiny) == variants.trainable_count(variant, shapes, 4)


def test_trainable_count_by_hand():
    shapes = [(16, 16), (24, 16), (16, 24)]
    assert variants.trainable_count("LoRA", shapes, 2) == 2 * 32 + 2 * 40 + 2 * 40
    assert variants.trainable_count("PiSSA", shapes, 2) == variants.trainable_count("rsLoRA", shapes, 2) == 224
    assert variants.trainable_count("DoRA", shapes, 2) == 224 + 16 + 24 + 16
    assert variants.trainable_count("VeRA", shapes, 2) == (2 + 16) + (2 + 24) + (2 + 16)
    assert variants.vera_shared_count(shapes, 2) == 2 * 24 + 24 * 2
    assert variants.target_shapes(Tiny(), ("ffn", "out")) == [(24, 16), (24, 16), (16, 24), (16, 24)]


@pytest.mark.parametrize("variant", variants.VARIANTS)
def test_merged_copy_and_merge_unmerge_work_for_every_variant(tiny, x, variant):
    model = adapted(tiny, variant)
    with torch.no_grad():
        before = model(x)
        deployed = lora.merged_copy(model)
        assert not lora.lora_layers(deployed)
        assert torch.allclose(deployed(x), before, atol=1e-5)
        weights = [layer.base.weight.clone() for layer in lora.lora_layers(model)]
        lora.merge_lora(model)
        assert torch.allclose(model(x), before, atol=1e-5)
        lora.unmerge_lora(model)
        assert torch.allclose(model(x), before, atol=1e-5)
    for layer, weight in zip(lora.lora_layers(model), weights):
        assert torch.allclose(layer.base.weight, weight, atol=1e-6)


@pytest.mark.parametrize("variant", variants.VARIANTS)
def test_every_variant_refuses_to_merge_a_nan_and_keeps_w0(tiny, variant):
    # regression: a NaN in a trained tensor was merged into W0 and stayed there after unmerging
    model = adapted(tiny, variant)
    layer = model.blocks[1].out
    trained = [p for name, p in layer.named_parameters() if p.requires_grad]
    with torch.no_grad():
        trained[-1].view(-1)[0] = float("nan")
    weights = [other.base.weight.clone() for other in lora.lora_layers(model)]
    with pytest.raises(ValueError, match="blocks.1.out: merging would write"):
        lora.merge_lora(model)
    for other, weight in zip(lora.lora_layers(model), weights):
        assert not other.merged and torch.equal(other.base.weight, weight)


@pytest.mark.parametrize("variant", ["LoRA", "rsLoRA", "DoRA", "VeRA"])
def test_switching_a_variant_off_gives_the_base_model(tiny, x, variant):
    model = adapted(tiny, variant)
    lora.set_lora_enabled(model, False)
    with torch.no_grad():
        assert torch.equal(model(x), tiny(x))


def test_a_variant_task_file_loads_into_the_same_variant_only(tiny, tmp_path):
    model = adapted(tiny, "DoRA")
    lora.save_lora(model, tmp_path / "dora.pt")
    fresh = adapted(tiny, "DoRA", trained=False)
    lora.load_lora(fresh, tmp_path / "dora.pt")
    for layer, saved in zip(lora.lora_layers(fresh), lora.lora_layers(model)):
        assert torch.equal(layer.lora_magnitude, saved.lora_magnitude)
    with pytest.raises(ValueError, match="variant"):
        lora.load_lora(adapted(tiny, "rsLoRA", trained=False), tmp_path / "dora.pt")
    assert lora.lora_config(model)["blocks.0.query"] == {"variant": "DoRA", "r": 4, "alpha": 8.0, "dropout": 0.0}


def test_add_variant_is_all_or_nothing(tiny):
    model = copy.deepcopy(tiny)
    with pytest.raises(ValueError, match="blocks.0.ffn: r must be between 1 and min"):
        variants.add_variant(model, "PiSSA", ("ffn", "query"), r=20)   # 20 > 16 for every target
    assert not lora.lora_layers(model)
    assert all(p.requires_grad for p in model.parameters())
    for (name, a), (_, b) in zip(model.state_dict().items(), tiny.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(("kwargs", "error", "name"), [
    (dict(variant="QLoRA"), ValueError, "variant"),
    (dict(targets="query"), TypeError, "targets"),
    (dict(targets=("nothing",)), ValueError, "nothing"),
    (dict(r=2.5), TypeError, "r"),
    (dict(r=0), ValueError, "r"),
    (dict(alpha=0), ValueError, "alpha"),
    (dict(dropout=1.0), ValueError, "dropout"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(train_also=["tail"]), ValueError, "train_also"),
    (dict(d_initial=0.5), ValueError, "d_initial"),
    (dict(variant="VeRA", d_initial="0.1"), TypeError, "d_initial"),
    (dict(variant="VeRA", r=0), ValueError, "r"),
    (dict(variant="VeRA", d_initial=0.0), ValueError, "d_initial must not be 0"),   # would never learn
    (dict(variant="VeRA", alpha=16.0), ValueError, "alpha is a setting of LoRA's scaling, not of VeRA"),
    (dict(variant="VeRA", alpha="8"), TypeError, "alpha must be a real number"),
    (dict(train_also=["blocks.0"]), ValueError, "overlaps 'blocks.0.query': one of the targets"),   # W0 would train
    (dict(quantize_base="yes"), TypeError, "quantize_base"),
])
def test_add_variant_refuses_bad_input(tiny, kwargs, error, name):
    arguments = dict(variant="DoRA", targets=TARGETS, r=4) | kwargs
    model = copy.deepcopy(tiny)
    with pytest.raises(error, match=name):
        variants.add_variant(model, **arguments)
    assert not lora.lora_layers(model)


def test_add_variant_refuses_a_model_that_already_has_lora(tiny):
    model = adapted(tiny, "LoRA", trained=False)
    with pytest.raises(ValueError, match="already has LoRA"):
        variants.add_variant(model, "DoRA", TARGETS, 4)
    with pytest.raises(TypeError, match="model"):
        variants.add_variant("model", "DoRA", TARGETS, 4)


@pytest.mark.parametrize(("call", "error", "name"), [
    (lambda: variants.trainable_count("BoRA", [(2, 2)], 1), ValueError, "variant"),
    (lambda: variants.trainable_count("LoRA", (4, 4), 1), TypeError, "shapes"),
    (lambda: variants.trainable_count("LoRA", "44", 1), TypeError, "shapes"),
    (lambda: variants.trainable_count("LoRA", [], 1), ValueError, "shapes"),
    (lambda: variants.trainable_count("LoRA", [(4, 0)], 1), ValueError, "shapes"),
    (lambda: variants.trainable_count("LoRA", [(4, 4.0)], 1), TypeError, "shapes"),
    (lambda: variants.trainable_count("LoRA", [(4, 4)], 0), ValueError, "r"),
    (lambda: variants.trainable_count("DoRA", [(16, 16), (24, 8)], 9), ValueError, "min.* = 8 for a 24x8 layer"),
    (lambda: variants.vera_shared_count(5, 1), TypeError, "shapes"),
    (lambda: variants.vera_shared_count([(4, 4)], "1"), TypeError, "r"),
    (lambda: variants.target_shapes(Tiny(), "query"), TypeError, "targets"),
])
def test_counting_functions_refuse_bad_input(call, error, name):
    with pytest.raises(error, match=name):
        call()


@pytest.mark.parametrize("kind", [variants.RsLoRALinear, variants.DoRALinear, variants.PiSSALinear])
@pytest.mark.parametrize(("kwargs", "error", "name"), [
    (dict(base=nn.Conv1d(8, 8, 1)), TypeError, "base"),
    (dict(r=9), ValueError, "r"),
    (dict(r=True), TypeError, "r"),
    (dict(alpha=-1), ValueError, "alpha"),
    (dict(dropout="0.1"), TypeError, "dropout"),
])
def test_variant_layers_refuse_bad_input(kind, kwargs, error, name):
    arguments = dict(base=nn.Linear(8, 8), r=2) | kwargs
    with pytest.raises(error, match=name):
        kind(**arguments)


# ---- rsLoRA -------------------------------------------------------------------------------

@pytest.mark.parametrize("r", [1, 4, 16])
def test_rslora_scales_by_alpha_over_square_root_of_r(r):
    layer = variants.RsLoRALinear(nn.Linear(16, 16), r, alpha=8)
    assert layer.scaling == pytest.approx(8 / math.sqrt(r))
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(3, 16)
    with torch.no_grad():
        expected = layer.base(x) + 8 / math.sqrt(r) * x @ layer.lora_A.T @ layer.lora_B.T
        assert torch.allclose(layer(x), expected, atol=1e-5)
    assert layer.config == {"variant": "rsLoRA", "r": r, "alpha": 8.0, "dropout": 0.0}


# ---- DoRA ---------------------------------------------------------------------------------

def trained_dora(seed=0):
    """A DoRA layer with nonzero B and a magnitude that moved away from ||W0||_c."""
    torch.manual_seed(seed)
    layer = variants.DoRALinear(nn.Linear(6, 5), r=2, alpha=4)
    with torch.no_grad():
        layer.lora_B.normal_()
        layer.lora_magnitude.mul_(1 + 0.3 * torch.rand(5))
    return layer


def test_dora_magnitude_starts_at_the_row_norms_of_w0():
    base = nn.Linear(6, 5)
    layer = variants.DoRALinear(base, r=2)
    by_hand = torch.tensor([math.sqrt(sum(float(w) ** 2 for w in row)) for row in base.weight])
    assert layer.lora_magnitude.shape == (5,) and layer.lora_magnitude.requires_grad
    assert torch.allclose(layer.lora_magnitude, by_hand)


def test_dora_forward_is_magnitude_times_direction_plus_bias():
    layer = trained_dora()
    W0, b, s = layer.base.weight, layer.base.bias, layer.scaling
    direction = W0 + s * layer.lora_B @ layer.lora_A
    W = layer.lora_magnitude[:, None] * direction / direction.norm(dim=1, keepdim=True)
    x = torch.randn(4, 6)
    with torch.no_grad():
        assert torch.allclose(layer(x), x @ W.T + b, atol=1e-5)
        assert torch.allclose(layer.delta_weight(), W - W0, atol=1e-6)
        assert torch.allclose(W.norm(dim=1), layer.lora_magnitude)   # the rows of W' have length m


def test_dora_norm_is_detached_in_the_backward_pass():
    layer = trained_dora()
    x, g = torch.randn(4, 6), torch.randn(4, 5)
    (layer(x) * g).sum().backward()

    def gradients(detach_norm):
        A, B, m = (t.detach().clone().requires_grad_(True) for t in (layer.lora_A, layer.lora_B, layer.lora_magnitude))
        direction = layer.base.weight + layer.scaling * B @ A
        norm = direction.norm(dim=1)
        W = (m / (norm.detach() if detach_norm else norm))[:, None] * direction
        ((x @ W.T + layer.base.bias) * g).sum().backward()
        return A.grad, B.grad, m.grad

    for ours, manual in zip((layer.lora_A.grad, layer.lora_B.grad, layer.lora_magnitude.grad), gradients(True)):
        assert torch.allclose(ours, manual, atol=1e-5)
    undetached = gradients(False)
    assert not torch.allclose(layer.lora_A.grad, undetached[0], atol=1e-3)   # the test can tell them apart


def test_dora_merge_keeps_w0_for_unmerge():
    layer = trained_dora()
    w0 = layer.base.weight.detach().clone()
    wanted = layer.adapted_weight().detach()
    layer.merge()
    assert torch.allclose(layer.base.weight, wanted, atol=1e-6)
    assert torch.equal(layer.original_weight(), w0)
    assert torch.allclose(layer.delta_weight(), wanted - w0, atol=1e-6)
    layer.merge()   # twice changes nothing
    layer.unmerge()
    assert torch.equal(layer.base.weight, w0) and layer.unmerged_weight is None
    layer.train()
    layer.merge()
    with pytest.raises(RuntimeError, match="unmerge"):
        layer(torch.randn(1, 6))


# ---- PiSSA --------------------------------------------------------------------------------

def test_pissa_residual_plus_update_is_w0_and_update_is_the_top_r_svd():
    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    w0 = base.weight.detach().clone()
    layer = variants.PiSSALinear(base, r=3, alpha=6)
    assert torch.equal(base.weight, w0)   # the layer passed in is not changed
    assert torch.allclose(layer.base.weight + layer.scaling * layer.lora_B @ layer.lora_A, w0, atol=1e-6)
    U, S, Vh = (torch.tensor(t, dtype=torch.float32) for t in np.linalg.svd(w0.double().numpy()))
    top = U[:, :3] @ torch.diag(S[:3]) @ Vh[:3]
    assert torch.allclose(layer.delta_weight(), top, atol=1e-5)
    # B^T B = A A^T = diag(S_r) / scaling: both halves carry sqrt of the singular values
    with torch.no_grad():
        assert torch.allclose(layer.lora_B.T @ layer.lora_B, torch.diag(S[:3]) / layer.scaling, atol=1e-5)
        assert torch.allclose(layer.lora_A @ layer.lora_A.T, torch.diag(S[:3]) / layer.scaling, atol=1e-5)
    assert torch.linalg.matrix_rank(layer.base.weight.detach()) == 10 - 3   # W0 had full rank 10


def test_qpissa_loses_less_than_quantising_w0():
    generator = torch.Generator().manual_seed(0)
    base = nn.Linear(128, 96)
    with torch.no_grad():   # a strong low-rank part plus noise, like a pretrained weight
        base.weight.copy_(torch.randn(96, 8, generator=generator) @ torch.randn(8, 128, generator=generator) / 4
                          + 0.05 * torch.randn(96, 128, generator=generator))
    qlora_error = (NF4Linear(base).weight - base.weight).norm()
    layer = variants.PiSSALinear(base, r=8, quantize_residual=True)
    assert isinstance(layer.base, NF4Linear)
    qpissa_error = (layer.base.weight + layer.delta_weight() - base.weight).norm()
    assert qpissa_error < qlora_error / 2


def test_pissa_refuses_an_already_quantised_base():
    with pytest.raises(TypeError, match="quantize_residual"):
        variants.PiSSALinear(NF4Linear(nn.Linear(8, 8)), r=2)
    with pytest.raises(TypeError, match="quantize_residual"):
        variants.PiSSALinear(nn.Linear(8, 8), r=2, quantize_residual=1)
    with pytest.raises(TypeError, match="base"):
        variants.PiSSALinear(nn.Conv1d(8, 8, 1), r=2)


# ---- VeRA ---------------------------------------------------------------------------------

def test_vera_shares_one_frozen_pair_and_trains_r_plus_d_out_per_layer(tiny):
    model = copy.deepcopy(tiny)
    names = variants.add_variant(model, "VeRA", TARGETS, r=32)   # r may exceed d_in and d_out
    layers = lora.lora_layers(model)
    assert len({id(layer.shared) for layer in layers}) == 1
    shared = layers[0].shared
    assert shared.vera_A.shape == (32, 24) and shared.vera_B.shape == (24, 32)
    assert not shared.vera_A.requires_grad and sum(b.numel() for b in model.buffers()) == \
        variants.vera_shared_count(variants.target_shapes(tiny, TARGETS), 32)
    for layer in layers:
        assert [n for n in names if n.endswith("vera_lambda_d")]
        assert torch.equal(layer.vera_lambda_d, torch.full((32,), 0.1))
        assert torch.equal(layer.vera_lambda_b, torch.zeros(layer.base.out_features))
    shapes = variants.target_shapes(tiny, TARGETS)
    assert count_parameters(model, trainable_only=True) == sum(32 + d_out for d_out, _ in shapes)
    assert variants.trainable_count("VeRA", shapes, 32) == sum(32 + d_out for d_out, _ in shapes)


def test_vera_forward_is_the_paper_formula(x):
    base = nn.Linear(16, 24)
    shared = variants.VeRAProjections(r=5, d_in=24, d_out=30, seed=1)
    layer = variants.VeRALinear(base, shared, d_initial=0.5)
    with torch.no_grad():
        layer.vera_lambda_b.normal_()
        A, B = shared.vera_A[:, :16], shared.vera_B[:24]
        expected = base(x) + layer.vera_lambda_b * ((layer.vera_lambda_d * (x @ A.T)) @ B.T)
        assert torch.allclose(layer(x), expected, atol=1e-5)
        assert torch.allclose(layer.delta_weight(), torch.diag(layer.vera_lambda_b) @ B @ torch.diag(
            layer.vera_lambda_d) @ A, atol=1e-6)
    assert layer.config == {"variant": "VeRA", "r": 5, "dropout": 0.0, "seed": 1}
    # the set-up shared with LoRALinear: frozen base, dropout, switches
    dropped = variants.VeRALinear(base, shared, dropout=0.3)
    assert not dropped.base.weight.requires_grad and dropped.dropout_rate == 0.3
    assert not dropped.merged and dropped.enabled


def test_vera_projections_depend_only_on_the_seed():
    a, b = variants.VeRAProjections(4, 8, 8, seed=2), variants.VeRAProjections(4, 8, 8, seed=2)
    assert torch.equal(a.vera_A, b.vera_A) and not torch.equal(a.vera_A, variants.VeRAProjections(4, 8, 8).vera_A)
    bound = math.sqrt(6 / 8)   # Kaiming uniform, fan_in = 8
    assert a.vera_A.abs().max() <= bound and a.vera_A.abs().max() > 0.5 * bound


def test_vera_refuses_bad_input():
    shared = variants.VeRAProjections(4, 8, 8)
    with pytest.raises(ValueError, match="shared"):
        variants.VeRALinear(nn.Linear(16, 8), shared)
    with pytest.raises(TypeError, match="shared"):
        variants.VeRALinear(nn.Linear(8, 8), torch.zeros(4, 8))
    with pytest.raises(TypeError, match="base"):
        variants.VeRALinear(nn.Conv1d(8, 8, 1), shared)
    with pytest.raises(TypeError, match="d_initial"):
        variants.VeRALinear(nn.Linear(8, 8), shared, d_initial=None)
    with pytest.raises(ValueError, match="d_initial must not be 0"):   # both gradients would stay 0
        variants.VeRALinear(nn.Linear(8, 8), shared, d_initial=0)
    with pytest.raises(ValueError, match="d_in"):
        variants.VeRAProjections(4, 0, 8)
    with pytest.raises(TypeError, match="seed"):
        variants.VeRAProjections(4, 8, 8, seed=1.5)


# ---- LoRA+ --------------------------------------------------------------------------------

def test_loraplus_gives_b_and_vectors_ratio_times_the_learning_rate(tiny):
    model = copy.deepcopy(tiny)
    variants.add_variant(model, "DoRA", TARGETS, r=4, train_also=["head"])
    groups = variants.loraplus_parameter_groups(model, lr=1e-3, ratio=16)
    rate = {id(p): group["lr"] for group in groups for p in group["params"]}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert id(parameter) not in rate
        elif "lora_B" in name or "lora_magnitude" in name or name == "head.bias":
            assert rate[id(parameter)] == pytest.approx(16e-3), name
        else:
            assert rate[id(parameter)] == 1e-3, name
    torch.optim.AdamW(groups)   # usable as they are


def test_loraplus_refuses_bad_input(tiny):
    model = adapted(tiny, "LoRA", trained=False)
    with pytest.raises(ValueError, match="lr"):
        variants.loraplus_parameter_groups(model, lr=0)
    with pytest.raises(ValueError, match="ratio"):
        variants.loraplus_parameter_groups(model, lr=1e-3, ratio=-1)
    with pytest.raises(TypeError, match="model"):
        variants.loraplus_parameter_groups("model", lr=1e-3)
    with pytest.raises(ValueError, match="lora_B"):
        variants.loraplus_parameter_groups(adapted(tiny, "VeRA", trained=False), lr=1e-3)


# ---- QLoRA bases --------------------------------------------------------------------------

def nf4_copy(model, targets):
    """A copy of ``model`` whose ``targets`` are NF4 copies of its layers, as
    ``add_variant(..., quantize_base=True)`` stores them."""
    quantized = copy.deepcopy(model)
    for name in lora.find_targets(quantized, targets):
        lora.set_module(quantized, name, NF4Linear(quantized.get_submodule(name)))
    return quantized


def test_quantize_base_builds_each_variant_on_nf4(tiny, x):
    quantized = nf4_copy(tiny, TARGETS)
    for variant in ("LoRA", "DoRA", "VeRA"):
        model = adapted(tiny, variant, trained=False, quantize_base=True)
        assert all(isinstance(layer.base, NF4Linear) for layer in lora.lora_layers(model))
        with torch.no_grad():
            assert torch.equal(model(x), quantized(x)), variant   # starts as the 4-bit model
        with pytest.raises(AttributeError, match="4 bits"):
            lora.merge_lora(model)
    qpissa = adapted(tiny, "PiSSA", trained=False, quantize_base=True)
    with torch.no_grad():
        assert (qpissa(x) - tiny(x)).norm() < (quantized(x) - tiny(x)).norm()
    with pytest.raises(TypeError, match="quantize_residual"):
        variants.add_variant(quantized, "PiSSA", TARGETS, 4)


# ---- against Hugging Face PEFT ------------------------------------------------------------

@pytest.mark.parametrize("variant", variants.VARIANTS)
def test_same_weights_give_the_same_output_as_peft(tiny, x, variant):
    ours = adapted(tiny, variant)
    theirs = peft_model(tiny, variant)
    assert variants.copy_variant_to_peft(ours, theirs) == 8
    with torch.no_grad():
        assert max_difference(ours(x), theirs(x)) < PEFT_TOLERANCE
        assert max_difference(ours(x), tiny(x)) > 1e-3   # the adapters do change the output


def test_rslora_scaling_is_peft_scaling(tiny):
    theirs = peft_model(tiny, "rsLoRA", r=9, alpha=6)
    ours = copy.deepcopy(tiny)
    variants.add_variant(ours, "rsLoRA", TARGETS, r=9, alpha=6)
    assert theirs.base_model.model.blocks[0].query.scaling["default"] == ours.blocks[0].query.scaling == 2


def test_dora_initial_magnitude_gradients_and_merge_match_peft(tiny, x):
    ours = adapted(tiny, "DoRA", trained=False)
    theirs = peft_model(tiny, "DoRA")
    peft_query = theirs.base_model.model.blocks[0].query
    assert torch.allclose(peft_query.lora_magnitude_vector["default"].weight, ours.blocks[0].query.lora_magnitude)
    perturb_trainable(ours)
    variants.copy_variant_to_peft(ours, theirs)
    ours.train(), theirs.train()
    g = torch.randn(6, 3, generator=torch.Generator().manual_seed(4))
    (ours(x) * g).sum().backward()
    (theirs(x) * g).sum().backward()
    layer = ours.blocks[0].query
    for mine, peft_tensor in ((layer.lora_A, peft_query.lora_A["default"].weight),
                              (layer.lora_B, peft_query.lora_B["default"].weight),
                              (layer.lora_magnitude, peft_query.lora_magnitude_vector["default"].weight)):
        assert max_difference(mine.grad, peft_tensor.grad) < PEFT_TOLERANCE
    ours.eval(), theirs.eval()
    with torch.no_grad():
        assert max_difference(lora.merged_copy(ours)(x), theirs.merge_and_unload()(x)) < PEFT_TOLERANCE


def test_pissa_a_b_and_residual_match_peft(tiny):
    ours = adapted(tiny, "PiSSA", trained=False)
    theirs = peft_model(tiny, "PiSSA")
    for name, layer in lora.named_lora_layers(ours):
        peft_layer = theirs.base_model.model.get_submodule(name)
        A, B = peft_layer.lora_A["default"].weight, peft_layer.lora_B["default"].weight
        # singular vectors are defined up to sign: compare the products, and A, B up to sign
        assert max_difference(layer.lora_B @ layer.lora_A, B @ A) < PEFT_TOLERANCE
        assert max_difference(layer.lora_A.abs(), A.abs()) < PEFT_TOLERANCE
        assert max_difference(layer.base.weight, peft_layer.get_base_layer().weight) < PEFT_TOLERANCE


def test_vera_projections_and_start_match_peft(tiny):
    ours = adapted(tiny, "VeRA", trained=False)
    theirs = peft_model(tiny, "VeRA")
    shared = lora.lora_layers(ours)[0].shared
    assert torch.equal(shared.vera_A, theirs.base_model.vera_A["default"])   # same seed, same draws
    assert torch.equal(shared.vera_B, theirs.base_model.vera_B["default"])
    peft_layer = theirs.base_model.model.blocks[0].ffn
    assert torch.equal(ours.blocks[0].ffn.vera_lambda_d, peft_layer.vera_lambda_d["default"])
    assert torch.equal(ours.blocks[0].ffn.vera_lambda_b, peft_layer.vera_lambda_b["default"])
    peft_trainable = sum(p.numel() for p in theirs.parameters() if p.requires_grad)
    assert peft_trainable == count_parameters(ours, trainable_only=True)


def course_name(peft_name):
    """A PEFT parameter's name as the course names it."""
    name = peft_name.removeprefix(PEFT_PREFIX)
    for theirs, mine in ((".lora_A.default.weight", ".lora_A"), (".lora_B.default.weight", ".lora_B"),
                         (".lora_magnitude_vector.default.weight", ".lora_magnitude")):
        name = name.replace(theirs, mine)
    return name.replace(".base_layer.", ".base.")


@pytest.mark.parametrize("variant", ["LoRA", "DoRA"])
def test_loraplus_learning_rates_match_peft(tiny, variant):
    from peft.optimizers import create_loraplus_optimizer

    ours = adapted(tiny, variant, trained=False, train_also=["head"])
    theirs = peft_model(tiny, variant)
    theirs.base_model.model.head.requires_grad_(True)
    optimizer = create_loraplus_optimizer(theirs, torch.optim.AdamW, lr=2e-4, loraplus_lr_ratio=16)
    by_id = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    peft_rates = {course_name(name): by_id[id(p)] for name, p in theirs.named_parameters() if p.requires_grad}
    groups = variants.loraplus_parameter_groups(ours, lr=2e-4, ratio=16)
    by_id = {id(p): group["lr"] for group in groups for p in group["params"]}
    our_rates = {name: by_id[id(p)] for name, p in ours.named_parameters() if p.requires_grad}
    assert our_rates == pytest.approx(peft_rates)
    assert len(set(our_rates.values())) == 2


def test_copy_variant_to_peft_refuses_a_mismatch(tiny):
    with pytest.raises(ValueError, match="scaling"):
        variants.copy_variant_to_peft(adapted(tiny, "rsLoRA"), peft_model(tiny, "LoRA"))
    with pytest.raises(ValueError, match="DoRA"):
        variants.copy_variant_to_peft(adapted(tiny, "LoRA"), peft_model(tiny, "DoRA"))
    with pytest.raises(ValueError, match="VeRA"):
        variants.copy_variant_to_peft(adapted(tiny, "LoRA"), peft_model(tiny, "VeRA"))
    other_seed = copy.deepcopy(tiny)
    variants.add_variant(other_seed, "VeRA", TARGETS, 4, seed=1)
    with pytest.raises(ValueError, match="projection_prng_key"):
        variants.copy_variant_to_peft(other_seed, peft_model(tiny, "VeRA"))
    with pytest.raises(ValueError, match="no LoRA"):
        variants.copy_variant_to_peft(tiny, peft_model(tiny, "LoRA"))
    with pytest.raises(TypeError, match="peft_model"):
        variants.copy_variant_to_peft(adapted(tiny, "LoRA"), None)
    with pytest.raises(TypeError, match="adapter must be a str"):
        variants.copy_variant_to_peft(adapted(tiny, "LoRA"), peft_model(tiny, "LoRA"), adapter=None)
    with pytest.raises(ValueError, match=r"adapter must be one of PEFT layer .*'s adapters \['default'\], got 'other'"):
        variants.copy_variant_to_peft(adapted(tiny, "LoRA"), peft_model(tiny, "LoRA"), adapter="other")
    with pytest.raises(ValueError, match="adapter must be one of"):
        variants.copy_variant_to_peft(adapted(tiny, "VeRA"), peft_model(tiny, "VeRA"), adapter="other")
