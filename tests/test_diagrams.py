"""Tests for lora_teach.diagrams: pictures drawn from the model, right colours, readable layout."""

import copy
import itertools

import matplotlib
import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from lora_teach import adapters, diagrams, lora, plotting
from lora_teach.diagrams import MATRICES
from lora_teach.model import ModelConfig, ModelM, freeze_all_except
from lora_teach.plotting import COLORS

TRAINED, FROZEN = to_hex(COLORS["trained"]), to_hex(COLORS["frozen"])
ENCODER_BOXES = ("embeddings", "embedding_norm", "encoder_stack", "W_q", "W_k", "W_v", "W_o",
                 "ffn_in", "ffn_out", "add_norm_1", "add_norm_2")   # in the two pictures of Model M
SMALL = ModelConfig(vocab_size=40, d_model=128, n_heads=4, d_ffn=256, n_layers=2, max_len=12)


def build(setup, config=SMALL, targets=("W_q", "W_v")):
    """A model set up as one of the course's methods."""
    model = ModelM(config)
    if setup == "full":
        freeze_all_except(model, ["token_embedding", "position_embedding", "segment_embedding",
                                  "embedding_norm", "layers", "heads.ner"])
    elif setup == "frozen":
        freeze_all_except(model, ["heads.ner"])
    elif setup == "adapters":
        adapters.add_adapters(model, 16, train_also=["heads.ner"])
    elif setup == "lora":
        lora.add_lora(model, targets, 8, train_also=["heads.ner"])
    return model   # "pretrain": everything trainable, as a fresh model is


SETUPS = ("pretrain", "full", "frozen", "adapters", "lora")


@pytest.fixture(autouse=True)
def close_figures():
    """Every test leaves no figure open, even when it fails."""
    yield
    plt.close("all")


def both(model):
    """The two pictures of Model M: the whole model and one of its layers, opened up."""
    return diagrams.draw_model_m(model), diagrams.draw_encoder_layer(model)


def figures(fig_or_figs):
    return (fig_or_figs,) if isinstance(fig_or_figs, Figure) else fig_or_figs


def texts(fig_or_figs):
    return [t.get_text() for fig in figures(fig_or_figs) for ax in fig.axes for t in ax.texts]


def all_text(fig_or_figs):
    return "\n".join(texts(fig_or_figs) + [ax.get_title() for fig in figures(fig_or_figs)
                                           for ax in fig.axes])


def legend_labels(fig):
    return [t.get_text() for t in fig.legends[0].get_texts()]


def patch(fig_or_figs, gid):
    """The one box (not its text) drawn with this gid, in one figure or in either of two."""
    found = [p for fig in figures(fig_or_figs) for p in fig.axes[0].patches if p.get_gid() == gid]
    assert len(found) == 1, f"expected one patch {gid!r}, found {len(found)}"
    return found[0]


def face(fig, gid):
    return to_hex(patch(fig, gid).get_facecolor())  # colour only, the light alpha dropped


def every_figure():
    """Each picture, including a large model whose labels are the longest; each is closed
    once the test has looked at it."""
    for fig in _every_figure():
        yield fig
        plt.close(fig)


def _every_figure():
    for setup in SETUPS:
        yield from both(build(setup))
    big = ModelConfig(vocab_size=30522, d_model=1024, n_heads=16, d_ffn=4096, n_layers=3)
    yield from both(build("adapters", big))
    yield from both(build("lora", targets=MATRICES))
    yield from (diagrams.draw_backpropagation(build(s)) for s in SETUPS)
    yield diagrams.draw_backpropagation(build("adapters", big))   # 5 blocks, the stop's 3 lines
    yield diagrams.draw_backpropagation(build("lora", targets=("ffn_out",)))
    yield diagrams.draw_adapter(adapters.BottleneckAdapter(1024, 64))
    yield diagrams.draw_lora_layer(lora.LoRALinear(__import__("torch").nn.Linear(4096, 1024), 16, 32))


# ---------------------------------------------------------------------------
# Model M
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("setup", SETUPS)
def test_model_m_draws_every_block_with_the_models_shapes(setup):
    whole, layer = pictures = both(build(setup))
    assert isinstance(whole, Figure) and isinstance(layer, Figure)
    words = all_text(pictures)
    for name in ("W_q", "W_k", "W_v", "W_o", "LayerNorm", "ffn_in 128→256, GELU", "ffn_out 256→128",
                 "MLM", "NSP", "NER", "FPB", "[CLS] shares of Morgan rose [SEP]", "× 2",
                 "4 heads × 32", "d_model = 128", "vocab × d = 40 × 128"):
        assert name in words, f"{name!r} missing for {setup!r}"
    assert "opened up in\nthe next picture" in texts(whole)   # the first picture points to the second
    assert "d_model = 128" in layer.axes[0].get_title()
    for fig in pictures:
        assert fig.get_dpi() == diagrams.COURSE_STYLE["figure.dpi"] == plotting.DISPLAY_DPI   # stored at 2x


def test_the_picture_follows_the_model_three_layers_and_other_targets():
    three = ModelConfig(vocab_size=40, d_model=64, n_heads=4, d_ffn=128, n_layers=3)
    whole, layer = both(build("lora", three, targets=("W_k", "ffn_out")))
    assert "encoder layer × 3" in all_text(whole) and "One of the 3 encoder layers" in all_text(layer)
    assert "LoRA on $W_k$, ffn_out (r = 8)" in whole.axes[0].get_title()
    assert {t.get_gid() for t in layer.axes[0].texts if t.get_text() == "B·A"} == {
        "lora_W_k", "lora_ffn_out"}
    backprop = diagrams.draw_backpropagation(build("frozen", three))
    assert list(gradient_arrows(backprop)) == ["head"]   # nothing below the head is trained
    assert list(statuses(backprop)) == [
        "embeddings", "encoder layer 1", "encoder layer 2", "encoder layer 3", "head"]


def test_model_m_titles_say_what_is_trained():
    expected = {"pretrain": "pretraining on MLM + NSP + NER + FPB", "full": "full fine-tuning, NER",
                "frozen": "frozen encoder: only the NER head", "adapters": "adapters (m = 16)",
                "lora": "LoRA on $W_q$, $W_v$ (r = 8)"}
    for setup, words in expected.items():
        assert words in diagrams.draw_model_m(build(setup)).axes[0].get_title()


def test_full_and_pretrain_train_every_weight_but_use_different_heads():
    for setup, used, unused in (("full", "NER", "MLM"), ("pretrain", "MLM", None)):
        fig = both(build(setup))
        assert all(face(fig, gid) == TRAINED for gid in ENCODER_BOXES)
        assert face(fig, f"head_{used}") == TRAINED
        if unused:
            assert patch(fig, f"head_{unused}").get_linestyle() == "--"
        assert not any("frozen" in label for f in fig for label in legend_labels(f))


def test_frozen_encoder_is_grey_and_the_head_is_trained():
    whole, layer = fig = both(build("frozen"))
    for gid in ENCODER_BOXES:
        assert face(fig, gid) == FROZEN, gid
    assert face(fig, "head_NER") == TRAINED
    assert patch(fig, "head_FPB").get_linestyle() == "--"
    # each legend names only what its picture draws: the heads in one, attention in the other
    assert legend_labels(whole) == ["trained (updated by AdamW)", "frozen (not updated)",
                                    "head not trained in this run"]
    assert legend_labels(layer) == ["frozen (not updated)", "operation without weights"]


def test_adapters_appear_twice_in_pink_and_the_embedding_norm_stays_frozen():
    fig = both(build("adapters"))
    assert face(fig, "adapter_1") == face(fig, "adapter_2") == to_hex(COLORS["adapter"])
    # Houlsby: adapters, the LayerNorms inside the layers and the head learn; add_adapters
    # freezes the embedding LayerNorm, and the picture says so (it used to colour it trained)
    assert face(fig, "add_norm_1") == TRAINED
    assert face(fig, "embedding_norm") == face(fig, "W_q") == face(fig, "ffn_in") == FROZEN
    # each adapter sits right below the add & norm it feeds: after W_o, after the feed-forward
    y = {gid: patch(fig, gid).get_y() for gid in ("W_o", "adapter_1", "add_norm_1", "ffn_out",
                                                  "adapter_2", "add_norm_2")}
    assert y["W_o"] < y["adapter_1"] < y["add_norm_1"] < y["ffn_out"] < y["adapter_2"] < y["add_norm_2"]
    for setup in ("full", "frozen", "lora"):
        assert not any("adapter" in t for t in texts(both(build(setup))))


def test_lora_sits_beside_its_targets_only():
    fig = both(build("lora"))
    assert texts(fig).count("B·A") == 2
    for name in ("W_q", "W_v"):
        path, weight = patch(fig, f"lora_{name}"), patch(fig, name)
        assert to_hex(path.get_facecolor()) == to_hex(COLORS["lora"])
        assert path.get_y() == weight.get_y() and path.get_x() > weight.get_x()
    assert face(fig, "W_q") == face(fig, "W_v") == FROZEN
    assert "B·A" not in texts(both(build("full")))


def head_arrows(fig):
    """The arrows into each head, by head name: (what they read, their starting points)."""
    found = {}
    for arrow in fig.axes[0].patches:
        kind, _, head = (arrow.get_gid() or "").partition(":")
        if kind in ("reads_cls", "reads_tokens"):
            found.setdefault(head, (kind, []))[1].append(tuple(arrow.get_path().vertices[0]))
    return found


def box_top(fig, gid):
    box = patch(fig, gid)
    return box.get_x(), box.get_x() + box.get_width(), box.get_y() + box.get_height()


def test_sentence_heads_read_the_cls_vector_and_token_heads_every_token():
    # regression: all four heads were fed from one point on top of the encoder; NSP and FPB
    # read only the [CLS] position's vector, MLM and NER every position's
    fig = diagrams.draw_model_m(build("frozen"))
    assert diagrams.read_model(build("frozen")).head_reads == {
        "mlm": "tokens", "nsp": "cls", "ner": "tokens", "fpb": "cls"}
    arrows = head_arrows(fig)
    assert set(arrows) == {"MLM", "NSP", "NER", "FPB"}
    cls_left, cls_right, cls_top = box_top(fig, "cls_vector")
    row_left, row_right, row_top = box_top(fig, "encoder_output")
    for head in ("NSP", "FPB"):   # one arrow, from the [CLS] vector
        kind, starts = arrows[head]
        assert kind == "reads_cls" and len(starts) == 1
        (x, y), = starts
        assert cls_left <= x <= cls_right and y == pytest.approx(cls_top)
    for head in ("MLM", "NER"):   # one arrow per position drawn, from the row of token vectors
        kind, starts = arrows[head]
        assert kind == "reads_tokens" and len(starts) == 3 and len({x for x, _ in starts}) == 3
        assert all(cls_right < x <= row_right and y == pytest.approx(row_top) for x, y in starts)
    words = {t.get_gid(): t.get_text() for t in fig.axes[0].texts}
    assert words["cls_vector"] == "[CLS]"
    assert words["label_cls"] == "read the [CLS] vector only" and words["label_tokens"] == "read every token"
    # each caption stands above its heads, the [CLS] readers on the left, above the [CLS] vector
    x = {name: patch(fig, f"head_{name}").get_x() for name in ("MLM", "NSP", "NER", "FPB")}
    assert max(x["NSP"], x["FPB"]) < min(x["MLM"], x["NER"])


class NerReadsCls(ModelM):
    """A Model M whose NER head reads the [CLS] vector, as a sentence-level head does."""

    def forward(self, task, input_ids, segment_ids=None, attention_mask=None):
        logits = super().forward(task, input_ids, segment_ids, attention_mask)
        return logits[:, 0] if task == "ner" else logits


def test_what_a_head_reads_is_read_from_the_model():
    model = NerReadsCls(SMALL)
    freeze_all_except(model, ["heads.ner"])
    assert diagrams.read_model(model).head_reads["ner"] == "cls"
    fig = diagrams.draw_model_m(model)
    kind, starts = head_arrows(fig)["NER"]
    cls_left, cls_right, cls_top = box_top(fig, "cls_vector")
    assert kind == "reads_cls" and len(starts) == 1 and cls_left <= starts[0][0] <= cls_right
    assert head_arrows(fig)["MLM"][0] == "reads_tokens"


@pytest.mark.parametrize("draw", [diagrams.draw_model_m, diagrams.draw_encoder_layer])
def test_bad_models_are_refused(draw):
    with pytest.raises(TypeError, match="model must be a ModelM"):
        draw(SMALL)
    uneven = ModelM(SMALL)
    lora.add_lora(uneven, ("layers.0.attention.W_q",), 4)
    with pytest.raises(ValueError, match="set up differently"):
        draw(uneven)


# ---------------------------------------------------------------------------
# Back-propagation
# ---------------------------------------------------------------------------

BACKPROP_BLOCKS = ("embeddings", "encoder layer 1", "encoder layer 2", "head")


def gradient_arrows(fig):
    return {p.get_gid().split(":", 1)[1]: p for p in fig.axes[0].patches
            if (p.get_gid() or "").startswith("gradient:")}


def statuses(fig):
    """The words beside each block, by block; blocks that share words share one text."""
    found = {}
    for text in fig.axes[0].texts:
        gid = text.get_gid() or ""
        if gid.startswith("status_"):
            found.update({block: text.get_text() for block in gid.removeprefix("status_").split(" + ")})
    return found


REACHED = {"pretrain": BACKPROP_BLOCKS, "full": BACKPROP_BLOCKS, "frozen": ("head",),
           "adapters": BACKPROP_BLOCKS[1:], "lora": BACKPROP_BLOCKS[1:]}


@pytest.mark.parametrize("setup", SETUPS)
def test_gradient_reaches_the_lowest_trained_module_and_no_further(setup):
    # regression: gradient arrows went down through every block, faintly where nothing below
    # was trained; now they stop at the block holding the lowest trained module, and a bar
    # marks the stop
    fig = diagrams.draw_backpropagation(build(setup))
    arrows = gradient_arrows(fig)
    assert tuple(sorted(arrows, key=BACKPROP_BLOCKS.index)) == REACHED[setup]
    for arrow in arrows.values():
        start, end = arrow.get_path().vertices[[0, -1]]
        assert end[1] < start[1]  # it points down: from the loss towards the input
        assert to_hex(arrow.get_edgecolor()) == to_hex(COLORS["error"])
        assert arrow.get_linestyle() != "-"  # dashed
        assert arrow.get_alpha() in (None, 1)   # no faint arrows: a drawn gradient is needed
    stops = [line for line in fig.axes[0].get_lines() if line.get_gid() == "gradient_stop"]
    lowest = REACHED[setup][0]
    if lowest == "embeddings":   # the gradient runs to the bottom: nothing to stop
        assert not stops
    else:
        stop, = stops
        below = BACKPROP_BLOCKS[BACKPROP_BLOCKS.index(lowest) - 1]
        y = stop.get_ydata()[0]
        assert patch(fig, below).get_y() + patch(fig, below).get_height() < y < patch(fig, lowest).get_y()
        assert to_hex(stop.get_color()) == to_hex(COLORS["error"])
        assert "backward pass stops" in [t.get_text() for t in fig.legends[0].get_texts()]
    words = statuses(fig)
    assert set(words) == set(BACKPROP_BLOCKS)
    frozen_blocks = [b for b in BACKPROP_BLOCKS if words[b].startswith("frozen")]
    expected = [] if setup in ("pretrain", "full") else list(BACKPROP_BLOCKS[:3])
    assert frozen_blocks == expected
    assert all(words[b] == diagrams.NOT_REACHED for b in BACKPROP_BLOCKS if b not in REACHED[setup])
    locks = [p for p in fig.axes[0].patches if p.get_gid() == "lock"]
    assert len(locks) == 2 * len(frozen_blocks)  # body and shackle per frozen block


@pytest.mark.parametrize("setup", SETUPS)
def test_the_adamw_update_is_said_once(setup):
    # regression: "updated by AdamW from dL/dW" stood beside every trained block, four times in
    # full fine-tuning; now blocks with the same words share one bracket and say them once
    fig = diagrams.draw_backpropagation(build(setup))
    words = texts(fig) + [t.get_text() for t in fig.legends[0].get_texts()]
    assert sum(diagrams.UPDATE in w or "AdamW" in w for w in words) == 1
    trained = [b for b in BACKPROP_BLOCKS if face(fig, b) == TRAINED]
    assert all(statuses(fig)[b].startswith(diagrams.UPDATE) for b in trained)
    brackets = [line for line in fig.axes[0].get_lines() if line.get_gid() == "bracket"]
    if len(trained) > 1:   # one bracket spans them all, from the lowest box to the highest
        bracket = next(b for b in brackets if to_hex(b.get_color()) == TRAINED)
        low, high = min(bracket.get_ydata()), max(bracket.get_ydata())
        assert low == pytest.approx(patch(fig, trained[0]).get_y())
        assert high == pytest.approx(patch(fig, trained[-1]).get_y() + patch(fig, trained[-1]).get_height())


def test_peft_gradient_passes_through_frozen_layers_to_the_new_modules():
    for setup, module, label, lowest in (("adapters", "adapter", "adapters", "adapter 1 (after $W_o$)"),
                                         ("lora", "lora", "B·A", "the B·A of $W_q$, $W_v$")):
        fig = diagrams.draw_backpropagation(build(setup))
        words = statuses(fig)
        assert "gradient passes through" in words["encoder layer 2"]
        assert f"stops at {lowest}:" in words["encoder layer 1"]
        assert "gradient passes through" not in words["encoder layer 1"]
        for i in (1, 2):
            assert to_hex(patch(fig, f"{module}_{i}").get_facecolor()) == to_hex(
                diagrams.ROLE_COLORS[module])
        assert texts(fig).count(label) == 2
        arrows = gradient_arrows(fig)
        assert "encoder layer 1" in arrows   # needed: it reaches trained modules
        assert "embeddings" not in arrows    # nothing below to train


def test_where_the_backward_pass_stops_is_read_from_requires_grad():
    # Houlsby adapters: the lowest trained module of layer 1 is its first adapter...
    model = build("adapters")
    assert diagrams.read_model(model).layer_trained == (
        "attention_adapter", "attention_norm", "output_adapter", "output_norm")
    # ...freeze the first adapters, and the first LayerNorm is the lowest...
    for layer in model.layers:
        layer.attention_adapter.requires_grad_(False)
    words = statuses(diagrams.draw_backpropagation(model))["encoder layer 1"]
    assert "stops at the first LayerNorm:" in words and "its adapter and LayerNorms are updated" in words
    # ...freeze the LayerNorms too, and it is the second adapter
    for layer in model.layers:
        layer.attention_norm.requires_grad_(False)
        layer.output_norm.requires_grad_(False)
    words = statuses(diagrams.draw_backpropagation(model))["encoder layer 1"]
    assert "stops at adapter 2 (after the feed-forward):" in words
    lora_ffn = build("lora", targets=("ffn_out",))
    words = statuses(diagrams.draw_backpropagation(lora_ffn))["encoder layer 1"]
    assert "stops at the B·A of ffn_out:" in words


def test_full_fine_tuning_updates_every_block():
    fig = diagrams.draw_backpropagation(build("full"))
    for block in BACKPROP_BLOCKS:
        assert face(fig, block) == TRAINED
        assert gradient_arrows(fig)[block].get_alpha() == 1
    assert set(statuses(fig).values()) == {diagrams.UPDATE}   # one text for all four blocks


# ---------------------------------------------------------------------------
# Adapter and LoRA close-ups, drawn from the modules
# ---------------------------------------------------------------------------

def test_adapter_picture_shows_bottleneck_skip_and_parameter_count():
    fig = diagrams.draw_adapter(adapters.BottleneckAdapter(128, 16))
    words = all_text(fig)
    for name in ("down-projection", "d → m", "GELU", "up-projection", "m → d",
                 "skip connection", "+", "2md + d + m", "4,240"):
        assert name in words, name
    assert to_hex(patch(fig, "down").get_facecolor()) == to_hex(COLORS["adapter"])
    # the flow goes up: input below the down-projection, which is below the up-projection
    assert patch(fig, "down").get_xy()[:, 1].max() < patch(fig, "up").get_xy()[:, 1].min()


def test_lora_layer_picture_shows_both_paths_and_the_merge():
    import torch
    fig = diagrams.draw_lora_layer(lora.LoRALinear(torch.nn.Linear(128, 128), r=8, alpha=16))
    words = all_text(fig)
    for name in ("W₀", "d × k = 128 × 128", "A  (r × k)", "random init", "B  (d × r)",
                 "zero init", "α/r", "16/8", "h = W₀x + (α/r)·B A x",
                 "merge for inference", "W = W₀ + (α/r)·B A", "2,048", "16,384"):
        assert name in words, name
    assert face(fig, "W0") == FROZEN
    assert to_hex(patch(fig, "A").get_facecolor()) == to_hex(COLORS["lora"])


def test_close_ups_need_the_module_they_draw():
    with pytest.raises(TypeError, match="adapter must be a BottleneckAdapter"):
        diagrams.draw_adapter(16)
    with pytest.raises(TypeError, match="layer must be a LoRALinear"):
        diagrams.draw_lora_layer(copy.deepcopy(ModelM(SMALL).layers[0].attention.W_q))


# ---------------------------------------------------------------------------
# Layout: readable pictures, and no side effects
# ---------------------------------------------------------------------------

def contains(outer, inner):
    return (outer.x0 <= inner.x0 and inner.x1 <= outer.x1
            and outer.y0 <= inner.y0 and inner.y1 <= outer.y1)


def test_every_picture_is_readable_from_the_back_of_the_room_and_fits_the_column():
    for fig in every_figure():
        assert plotting.figure_problems(fig) == [], fig.axes[0].get_title()


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
    both(build("lora"))
    diagrams.draw_backpropagation(build("adapters"))
    assert dict(matplotlib.rcParams) == before


def test_model_title_refuses_anything_but_a_model_view():
    # regression: a model instead of its view gave AttributeError: ... has no attribute 'heads'
    with pytest.raises(TypeError, match="view must be a ModelView, got ModelM"):
        diagrams.model_title(build("lora"))
