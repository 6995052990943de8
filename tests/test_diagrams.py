"""Tests for lora_teach.diagrams: the right blocks, the right colours, readable layout."""

import matplotlib

matplotlib.use("Agg")

import itertools  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from lora_teach import diagrams  # noqa: E402
from lora_teach.plotting import COLORS  # noqa: E402

TRAINED, FROZEN = to_hex(COLORS["full"]), to_hex(COLORS["noise"])
ENCODER_BOXES = ("embeddings", "embedding_norm", "encoder_stack", "W_q", "W_k", "W_v", "W_o",
                 "ffn", "add_norm_1", "add_norm_2")
BACKPROP_BLOCKS = ("embeddings", "encoder layer 1", "encoder layer 2", "encoder layer 3", "head")


@pytest.fixture(autouse=True)
def close_figures():
    """Every test leaves no figure open, even when it fails."""
    yield
    plt.close("all")


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def all_text(fig):
    return "\n".join(texts(fig) + [ax.get_title() for ax in fig.axes])


def patch(fig, gid):
    """The one box (not its text) drawn with this gid."""
    found = [p for p in fig.axes[0].patches if p.get_gid() == gid]
    assert len(found) == 1, f"expected one patch {gid!r}, found {len(found)}"
    return found[0]


def face(fig, gid):
    return to_hex(patch(fig, gid).get_facecolor())  # colour only, the light alpha dropped


def every_figure():
    """Each picture, including a large model whose labels are the longest."""
    yield from (diagrams.draw_model_m(method=m) for m in diagrams.METHODS)
    yield diagrams.draw_model_m(n_layers=24, d_model=1024, n_heads=16, d_ffn=4096,
                                vocab_size=30522, method="adapters")
    yield from (diagrams.draw_backpropagation(m) for m in diagrams.BACKPROP_METHODS)
    yield diagrams.draw_adapter(d_model=1024, bottleneck=64)
    yield diagrams.draw_lora_layer(d=1024, k=4096, r=16, alpha=32)


# ---------------------------------------------------------------------------
# Model M
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", diagrams.METHODS)
def test_model_m_draws_every_block_with_shapes(method):
    fig = diagrams.draw_model_m(n_layers=6, d_model=128, n_heads=4, d_ffn=256, method=method)
    assert isinstance(fig, Figure)
    words = all_text(fig)
    for name in ("W_q", "W_k", "W_v", "W_o", "LayerNorm", "feed-forward", "GELU",
                 "MLM", "NSP", "NER", "FPB", "[CLS] shares of Morgan rose [SEP]", "× 6",
                 "4 heads × 32", "128→256", "256→128", "d_model = 128"):
        assert name in words, f"{name!r} missing for method={method!r}"
    assert "vocab" not in words  # only drawn when the vocabulary size is given
    assert fig.get_dpi() == diagrams.COURSE_STYLE["figure.dpi"]


def test_model_m_shows_vocab_size_when_given():
    fig = diagrams.draw_model_m(vocab_size=1000)
    assert "vocab × d = 1,000 × 128" in all_text(fig)


def test_model_m_titles_name_the_method():
    expected = {"pretrain": "pretraining", "full": "full fine-tuning", "frozen": "frozen encoder",
                "adapters": "adapters", "lora": "LoRA"}
    for method, word in expected.items():
        fig = diagrams.draw_model_m(method=method)
        assert word in fig.axes[0].get_title()


def test_full_and_pretrain_train_every_weight_but_use_different_heads():
    for method, used, unused in (("full", "NER", "MLM"), ("pretrain", "MLM", "NER")):
        fig = diagrams.draw_model_m(method=method)
        assert all(face(fig, gid) == TRAINED for gid in ENCODER_BOXES)
        assert face(fig, f"head_{used}") == TRAINED
        assert patch(fig, f"head_{unused}").get_linestyle() == "--"
        legend = [t.get_text() for t in fig.legends[0].get_texts()]
        assert not any("frozen" in label for label in legend)


def test_frozen_encoder_is_grey_and_the_head_is_trained():
    fig = diagrams.draw_model_m(method="frozen")
    for gid in ENCODER_BOXES:
        assert face(fig, gid) == FROZEN, gid
    assert face(fig, "head_NER") == face(fig, "head_FPB") == TRAINED
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("frozen" in label for label in legend)


def test_adapters_appear_twice_in_pink_only_for_method_adapters():
    fig = diagrams.draw_model_m(method="adapters")
    labels = [t for t in texts(fig) if t.startswith("adapter")]
    assert len(labels) >= 2
    assert face(fig, "adapter_1") == face(fig, "adapter_2") == to_hex(COLORS["adapter"])
    # Houlsby: adapters, LayerNorms and the head learn; the rest stays frozen
    assert face(fig, "add_norm_1") == face(fig, "embedding_norm") == TRAINED
    assert face(fig, "W_q") == face(fig, "ffn") == FROZEN
    # each adapter sits right below the add & norm it feeds: after W_o, after the feed-forward
    y = {gid: patch(fig, gid).get_y() for gid in ("W_o", "adapter_1", "add_norm_1", "ffn",
                                                  "adapter_2", "add_norm_2")}
    assert y["W_o"] < y["adapter_1"] < y["add_norm_1"] < y["ffn"] < y["adapter_2"] < y["add_norm_2"]
    for method in ("full", "frozen", "lora"):
        assert not any("adapter" in t for t in texts(diagrams.draw_model_m(method=method)))


def test_lora_sits_beside_w_q_and_w_v_only():
    fig = diagrams.draw_model_m(method="lora")
    assert texts(fig).count("B·A") == 2
    for name in ("q", "v"):
        lora, weight = patch(fig, f"lora_{name}"), patch(fig, f"W_{name}")
        assert to_hex(lora.get_facecolor()) == to_hex(COLORS["lora"])
        assert lora.get_y() == weight.get_y() and lora.get_x() > weight.get_x()
    assert face(fig, "W_q") == face(fig, "W_v") == FROZEN
    assert "B·A" not in texts(diagrams.draw_model_m(method="full"))


@pytest.mark.parametrize("kwargs, error, name", [
    ({"method": "prefix"}, ValueError, "method"),
    ({"n_layers": 0}, ValueError, "n_layers"),
    ({"n_layers": 2.0}, TypeError, "n_layers"),
    ({"d_model": -8}, ValueError, "d_model"),
    ({"n_heads": True}, TypeError, "n_heads"),
    ({"d_ffn": "256"}, TypeError, "d_ffn"),
    ({"vocab_size": 0}, ValueError, "vocab_size"),
    ({"d_model": 130, "n_heads": 4}, ValueError, "n_heads"),
])
def test_model_m_rejects_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        diagrams.draw_model_m(**kwargs)


def test_unknown_method_lists_the_valid_ones():
    with pytest.raises(ValueError) as info:
        diagrams.draw_model_m(method="Full")
    assert all(repr(m) in str(info.value) for m in diagrams.METHODS)


# ---------------------------------------------------------------------------
# Back-propagation
# ---------------------------------------------------------------------------

def gradient_arrows(fig):
    return {p.get_gid().split(":", 1)[1]: p for p in fig.axes[0].patches
            if (p.get_gid() or "").startswith("gradient:")}


@pytest.mark.parametrize("method", diagrams.BACKPROP_METHODS)
def test_gradient_reaches_every_block_and_frozen_is_said_when_true(method):
    fig = diagrams.draw_backpropagation(method)
    arrows = gradient_arrows(fig)
    assert set(arrows) == set(BACKPROP_BLOCKS)
    for arrow in arrows.values():
        start, end = arrow.get_path().vertices[[0, -1]]
        assert end[1] < start[1]  # it points down: from the loss towards the input
        assert to_hex(arrow.get_edgecolor()) == to_hex(COLORS["highlight"])
        assert arrow.get_linestyle() != "-"  # dashed
    words = all_text(fig)
    assert ("frozen" in words) == (method != "full")
    statuses = {t.get_gid(): t.get_text() for t in fig.axes[0].texts
                if (t.get_gid() or "").startswith("status_")}
    assert statuses["status_head"].startswith("updated")
    frozen_blocks = [b for b in BACKPROP_BLOCKS if statuses[f"status_{b}"].startswith("frozen")]
    expected = {"full": [], "frozen": list(BACKPROP_BLOCKS[:4]),
                "adapters": list(BACKPROP_BLOCKS[:4]), "lora": list(BACKPROP_BLOCKS[:4])}[method]
    assert frozen_blocks == expected
    locks = [p for p in fig.axes[0].patches if p.get_gid() == "lock"]
    assert len(locks) == 2 * len(frozen_blocks)  # body and shackle per frozen block


def test_peft_gradient_passes_through_frozen_layers_to_the_new_modules():
    for method, module, label in (("adapters", "adapter", "adapters"), ("lora", "lora", "B·A")):
        fig = diagrams.draw_backpropagation(method)
        statuses = {t.get_gid(): t.get_text() for t in fig.axes[0].texts}
        for i in (1, 2, 3):
            assert "gradient passes through" in statuses[f"status_encoder layer {i}"]
            assert to_hex(patch(fig, f"{module}_{i}").get_facecolor()) == to_hex(
                diagrams.ROLE_COLORS[module])
        assert texts(fig).count(label) == 3
        arrows = gradient_arrows(fig)
        assert arrows["encoder layer 1"].get_alpha() == 1  # needed: it reaches trained modules
        assert arrows["embeddings"].get_alpha() < 1        # nothing below to train


def test_full_fine_tuning_updates_every_block():
    fig = diagrams.draw_backpropagation("full")
    for block in BACKPROP_BLOCKS:
        assert face(fig, block) == TRAINED
        assert gradient_arrows(fig)[block].get_alpha() == 1


def test_backpropagation_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        diagrams.draw_backpropagation("pretrain")


# ---------------------------------------------------------------------------
# Adapter and LoRA close-ups
# ---------------------------------------------------------------------------

def test_adapter_picture_shows_bottleneck_skip_and_parameter_count():
    fig = diagrams.draw_adapter(d_model=128, bottleneck=16)
    words = all_text(fig)
    for name in ("down-projection", "d → m", "nonlinearity", "up-projection", "m → d",
                 "skip connection", "+", "2md + d + m", "4,240"):
        assert name in words, name
    assert to_hex(patch(fig, "down").get_facecolor()) == to_hex(COLORS["adapter"])
    # the flow goes up: input below the down-projection, which is below the up-projection
    assert patch(fig, "down").get_xy()[:, 1].max() < patch(fig, "up").get_xy()[:, 1].min()


def test_lora_layer_picture_shows_both_paths_and_the_merge():
    fig = diagrams.draw_lora_layer(d=128, k=128, r=8, alpha=16)
    words = all_text(fig)
    for name in ("W₀", "d × k = 128 × 128", "A  (r × k)", "random init", "B  (d × r)",
                 "zero init", "α/r", "16/8", "h = W₀x + (α/r)·B A x",
                 "merge for inference", "W = W₀ + (α/r)·B A", "2,048", "16,384"):
        assert name in words, name
    assert face(fig, "W0") == FROZEN
    assert to_hex(patch(fig, "A").get_facecolor()) == to_hex(COLORS["lora"])


@pytest.mark.parametrize("func, kwargs, error, name", [
    (diagrams.draw_adapter, {"bottleneck": 0}, ValueError, "bottleneck"),
    (diagrams.draw_adapter, {"d_model": 12.5}, TypeError, "d_model"),
    (diagrams.draw_lora_layer, {"r": 0}, ValueError, "r"),
    (diagrams.draw_lora_layer, {"r": 200}, ValueError, "r must be at most"),
    (diagrams.draw_lora_layer, {"alpha": "8"}, TypeError, "alpha"),
])
def test_close_ups_reject_bad_arguments(func, kwargs, error, name):
    with pytest.raises(error, match=name):
        func(**kwargs)


# ---------------------------------------------------------------------------
# Layout: readable pictures, and no side effects
# ---------------------------------------------------------------------------

def contains(outer, inner):
    return (outer.x0 <= inner.x0 and inner.x1 <= outer.x1
            and outer.y0 <= inner.y0 and inner.y1 <= outer.y1)


def test_labels_fit_their_boxes_and_no_text_overlaps():
    for fig in every_figure():
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        boxes = {p.get_gid(): p.get_window_extent(renderer) for p in ax.patches if p.get_gid()}
        extents = [(t, t.get_window_extent(renderer)) for t in ax.texts if t.get_text()]
        for text, extent in extents:
            inside = boxes.get(text.get_gid())
            if inside is not None:
                assert contains(inside, extent), text.get_text()
            assert contains(fig.bbox, extent), f"{text.get_text()!r} runs off the figure"
            for gid, box in boxes.items():  # no label runs into somebody else's box...
                if gid in (text.get_gid(), "lock") or gid.startswith("gradient:"):
                    continue
                if inside is not None and contains(box, inside):
                    continue  # ...unless its own box sits inside that one (adapter in a layer)
                assert not extent.overlaps(box), (text.get_text(), gid)
        others = [ax.title.get_window_extent(renderer)] + [
            legend.get_window_extent(renderer) for legend in fig.legends]
        for (a, ea), (b, eb) in itertools.combinations(extents, 2):
            assert not ea.overlaps(eb), (a.get_text(), b.get_text())
        for text, extent in extents:
            assert not any(extent.overlaps(o) for o in others), text.get_text()


def test_drawing_leaves_global_style_alone():
    before = dict(matplotlib.rcParams)
    diagrams.draw_model_m(method="lora")
    diagrams.draw_backpropagation("adapters")
    assert dict(matplotlib.rcParams) == before
