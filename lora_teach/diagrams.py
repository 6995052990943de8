"""Block diagrams of Model M, back-propagation, a Houlsby adapter and a LoRA layer.

The source notes promise three pictures they never draw ("Model M Architecture",
"Back-propagation", "Model M Architecture With Adapters"); this module draws them, plus a
close-up of one adapter and one LoRA layer. Everything is drawn with plain matplotlib patches,
arrows and text, so you can read how each picture is built.

One colour code runs through every picture (the course's :data:`~lora_teach.plotting.COLORS`):

* blue  = trained: these weights are updated by the optimizer,
* grey  = frozen: the weights stay exactly as pretrained,
* pink  = a new adapter module (trained), green = a new LoRA module (trained),
* vermillion = the gradient of the loss (and the attention operation, which has no weights).

Each function returns its ``Figure`` (it never calls ``plt.show()``), drawn in the course style
without changing the global matplotlib settings.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.patches import (Arc, Ellipse, FancyArrowPatch, FancyBboxPatch, Patch, Polygon,
                                Rectangle)

from lora_teach.plotting import COLORS, COURSE_STYLE

#: Methods :func:`draw_model_m` knows; :func:`draw_backpropagation` knows all but "pretrain".
METHODS = ("pretrain", "full", "frozen", "adapters", "lora")
BACKPROP_METHODS = ("full", "frozen", "adapters", "lora")

#: Edge colour of a box for each role; its face is the same colour, made light (FILL_ALPHA).
ROLE_COLORS = {
    "trained": COLORS["full"],
    "frozen": COLORS["noise"],
    "adapter": COLORS["adapter"],
    "lora": COLORS["lora"],
    "op": COLORS["highlight"],   # an operation without weights (attention, +)
    "unused": COLORS["noise"],   # a head that takes no part in this run
    "data": COLORS["text"],      # inputs, outputs, the loss
}
FILL_ALPHA = 0.22
GRADIENT = COLORS["highlight"]
TOKENS = "[CLS] shares of Morgan rose [SEP] ..."

_TITLES = {
    "pretrain": "Model M, pretraining on MLM + NSP: every weight is trained",
    "full": "Model M, full fine-tuning (NER or FPB): every weight is trained",
    "frozen": "Model M, frozen encoder: only the task head is trained",
    "adapters": "Model M with adapters (PEFT): adapters, LayerNorms and head trained",
    "lora": "Model M with LoRA on $W_q$ and $W_v$: only B·A and the head trained",
}


# ---------------------------------------------------------------------------
# Checking the arguments
# ---------------------------------------------------------------------------

def _check_positive_int(value, name: str) -> None:
    """TypeError unless ``value`` is an int (a bool is not), ValueError unless it is >= 1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int, got {value!r} of type "
                        f"{type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")


def _check_method(method, valid: tuple[str, ...]) -> None:
    if method not in valid:
        raise ValueError(f"method must be one of {', '.join(map(repr, valid))}; got {method!r}")


# ---------------------------------------------------------------------------
# Drawing helpers: a canvas, a box, an arrow, a legend
# ---------------------------------------------------------------------------

def _canvas(size: tuple[float, float], title: str):
    """A figure with one axis-free drawing area whose coordinates run 0..100 both ways."""
    fig = plt.figure(figsize=size)
    ax = fig.add_axes((0.01, 0.09, 0.98, 0.83))
    ax.set(xlim=(0, 100), ylim=(0, 100))
    ax.axis("off")
    ax.set_title(title, pad=6)
    return fig, ax


def _box(ax, x, y, w, h, label, role, gid=None, fontsize=8.5, label_dx=0.0):
    """A rounded box centred at (x, y), coloured by its ``role``, with ``label`` inside
    (shifted sideways by ``label_dx`` when something else shares the box).

    The box and its text share the ``gid`` so that a test can find them again.
    """
    color = ROLE_COLORS[role]
    face = "white" if role in ("op", "unused", "data") else to_rgba(color, FILL_ALPHA)
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=1",
                           facecolor=face, edgecolor=color, linewidth=1.4,
                           linestyle="--" if role == "unused" else "-", gid=gid, zorder=2)
    ax.add_patch(patch)
    ax.text(x + label_dx, y, label, ha="center", va="center", fontsize=fontsize, gid=gid,
            zorder=4, color=COLORS["noise"] if role == "unused" else COLORS["text"])
    return patch


def _trapezoid(ax, x, y, bottom_w, top_w, h, label, role, gid=None):
    """A trapezoid centred at (x, y): wide-to-narrow is a down-projection, narrow-to-wide up."""
    color = ROLE_COLORS[role]
    corners = [(x - bottom_w / 2, y - h / 2), (x + bottom_w / 2, y - h / 2),
               (x + top_w / 2, y + h / 2), (x - top_w / 2, y + h / 2)]
    ax.add_patch(Polygon(corners, facecolor=to_rgba(color, FILL_ALPHA), edgecolor=color,
                         linewidth=1.4, gid=gid, zorder=2))
    ax.text(x, y, label, ha="center", va="center", fontsize=8.5, gid=gid, zorder=4)


def _arrow(ax, start, end, color=COLORS["text"], dashed=False, gid=None, alpha=1.0, lw=1.3):
    """An arrow from ``start`` to ``end``; dashed ones are gradients flowing backwards."""
    arrow = FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=11, color=color,
                            linewidth=lw, linestyle=(0, (4, 2.5)) if dashed else "-",
                            shrinkA=0, shrinkB=0, gid=gid, alpha=alpha, zorder=3)
    ax.add_patch(arrow)
    return arrow


def _line(ax, points, color=COLORS["text"], arrow_at_end=True, lw=1.3):
    """A polyline through ``points`` (e.g. a residual connection), with an arrow on its end."""
    xs, ys = zip(*points)
    ax.plot(xs[:-1] if arrow_at_end else xs, ys[:-1] if arrow_at_end else ys,
            color=color, linewidth=lw, zorder=3, solid_capstyle="butt")
    if arrow_at_end:
        _arrow(ax, points[-2], points[-1], color=color, lw=lw)


def _legend(fig, roles_and_labels, extra_handles=()):
    """A legend under the drawing: one swatch per (role, label), then any extra handles."""
    handles = []
    for role, label in roles_and_labels:
        color = ROLE_COLORS[role]
        face = "white" if role in ("unused", "op") else to_rgba(color, FILL_ALPHA)
        handles.append(Patch(facecolor=face, edgecolor=color, linewidth=1.4,
                             linestyle="--" if role == "unused" else "-", label=label))
    handles.extend(extra_handles)
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 3), fontsize=8,
               frameon=False, handlelength=1.8, columnspacing=1.4)


def _sum_node(ax, x, y, ry=3.5):
    """A round "+" node at (x, y), ``ry`` units tall; returns its half-width in x units
    (the drawing area is not square, so a circle is an ellipse in data units)."""
    width, height = ax.get_position().size * ax.figure.get_size_inches()
    rx = ry * height / width
    ax.add_patch(Ellipse((x, y), 2 * rx, 2 * ry, facecolor="white", edgecolor=COLORS["text"],
                         linewidth=1.4, gid="sum", zorder=2))
    ax.text(x, y, "+", ha="center", va="center", fontsize=13, gid="sum", zorder=4)
    return rx


def _lock(ax, x, y, color=COLORS["noise"]):
    """A small padlock (a body and an arc-shaped shackle): "these weights cannot change"."""
    ax.add_patch(Rectangle((x - 1.1, y - 2.2), 2.2, 2.2, facecolor=color, edgecolor=color,
                           zorder=4, gid="lock"))
    ax.add_patch(Arc((x, y), 1.6, 2.6, theta1=0, theta2=180, color=color, linewidth=1.6,
                     zorder=4, gid="lock"))


# ---------------------------------------------------------------------------
# 1. Model M
# ---------------------------------------------------------------------------

def _roles(method: str) -> dict[str, str]:
    """Which role (trained / frozen / ...) each kind of block plays under ``method``."""
    everything = "trained" if method in ("pretrain", "full") else "frozen"
    return {
        "embeddings": everything,
        "norm": "trained" if method in ("pretrain", "full", "adapters") else "frozen",
        "weights": everything,  # W_q, W_k, W_v, W_o and the feed-forward
        "pretrain_head": "trained" if method == "pretrain" else "unused",
        "task_head": "unused" if method == "pretrain" else "trained",
    }


def draw_model_m(n_layers: int = 4, d_model: int = 128, n_heads: int = 4, d_ffn: int = 256,
                 vocab_size: int | None = None, method: str = "full"):
    """Model M, the small BERT-style encoder of the course, drawn from input tokens to heads.

    Left: the whole model, bottom to top: tokens, summed token + position + segment
    embeddings, LayerNorm, a stack of ``n_layers`` encoder layers, and the four heads (MLM and
    NSP for pretraining, NER and FPB for the fine-tuning tasks). Right: one encoder layer
    opened up (post-LN, as in BERT), with its weight matrices and shapes.

    ``method`` colours what is trained (blue) and what is frozen (grey), which is the whole
    difference between the fine-tuning methods of the course:

    * ``"pretrain"`` / ``"full"``: every weight is trained (MLM + NSP heads, or a task head);
    * ``"frozen"``: the encoder is frozen, only the task head learns;
    * ``"adapters"``: two new adapters per layer (pink), after the attention output projection
      and after the feed-forward block; they, the LayerNorms and the head are trained;
    * ``"lora"``: a new low-rank path B·A (green) beside ``W_q`` and ``W_v``; only those and the
      head are trained.
    """
    for name, value in (("n_layers", n_layers), ("d_model", d_model), ("n_heads", n_heads),
                        ("d_ffn", d_ffn)):
        _check_positive_int(value, name)
    if vocab_size is not None:
        _check_positive_int(vocab_size, "vocab_size")
    if d_model % n_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
    _check_method(method, METHODS)
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.5, 5.6), _TITLES[method])
        roles = _roles(method)
        _draw_model_stack(ax, roles, method, d_model, vocab_size)
        _draw_encoder_layer(ax, roles, method, n_layers, d_model, n_heads, d_ffn)
        legend = [("trained", "trained (updated)")]
        if method not in ("pretrain", "full"):
            legend.append(("frozen", "frozen (not updated)"))
        if method in ("adapters", "lora"):
            new = "adapter" if method == "adapters" else "lora"
            legend.append((new, f"new module: {'adapter' if new == 'adapter' else 'LoRA B·A'}"
                                ", trained"))
        legend.append(("unused", "head not used in this run"))
        _legend(fig, legend)
    return fig


def _draw_model_stack(ax, roles, method, d_model, vocab_size):
    """Left half of the Model M picture: tokens -> embeddings -> LayerNorm -> layers -> heads."""
    x = 23
    ax.text(x, 3, TOKENS, ha="center", va="center", fontsize=8, family="monospace", gid="tokens")
    _arrow(ax, (x, 5.5), (x, 10))
    shape = f"vocab × d = {vocab_size:,} × {d_model:,}" if vocab_size else f"d_model = {d_model}"
    _box(ax, x, 16, 40, 12, f"embeddings: token + position + segment\n(summed)   {shape}",
         roles["embeddings"], gid="embeddings")
    _arrow(ax, (x, 22), (x, 26))
    _box(ax, x, 29.5, 40, 7, "LayerNorm", roles["norm"], gid="embedding_norm")
    _arrow(ax, (x, 33), (x, 38))
    extra = {"adapters": "\n(+ 2 adapters each)", "lora": "\n(+ LoRA on $W_q$, $W_v$)"}
    for shift in (2.4, 1.2):  # two shadows behind the box: "there are several of these"
        ax.add_patch(FancyBboxPatch((x - 17 + shift, 38 + shift), 34, 14,
                                    boxstyle="round,pad=0,rounding_size=1", facecolor="white",
                                    edgecolor=ROLE_COLORS[roles["weights"]], linewidth=1.0))
    _box(ax, x, 45, 34, 14, "encoder layer" + extra.get(method, ""), roles["weights"],
         gid="encoder_stack")
    heads = [("MLM", "masked\nwords", "pretrain_head"), ("NSP", "next\nsentence?", "pretrain_head"),
             ("NER", "tag per\ntoken", "task_head"), ("FPB", "sentence\nsentiment", "task_head")]
    for i, (name, what, kind) in enumerate(heads):
        hx = 6.5 + i * 11
        _arrow(ax, (x, 54.4), (hx, 65))
        _box(ax, hx, 72, 10.2, 14, f"{name}\n{what}", roles[kind], gid=f"head_{name}",
             fontsize=7.5)
    ax.text(12, 82, "pretraining heads", ha="center", fontsize=8, gid="label_pretrain")
    ax.text(34, 82, "task heads", ha="center", fontsize=8, gid="label_task")


def _layer_rows(method, roles, d_model, n_heads, d_ffn):
    """The sub-blocks of one encoder layer above W_q/W_k/W_v, bottom to top."""
    rows = [("attention", f"multi-head self-attention (no weights)\n"
                          f"{n_heads} heads × {d_model // n_heads} dims", "op", 8),
            ("W_o", "$W_o$  output projection", roles["weights"], 5.5)]
    if method == "adapters":
        rows.append(("adapter_1", "adapter 1  (d → m → d)", "adapter", 5.5))
    rows += [("add_norm_1", "add residual & LayerNorm", roles["norm"], 5.5),
             ("ffn", f"feed-forward: Linear {d_model}→{d_ffn}, GELU,\nLinear {d_ffn}→{d_model}",
              roles["weights"], 8)]
    if method == "adapters":
        rows.append(("adapter_2", "adapter 2  (d → m → d)", "adapter", 5.5))
    rows.append(("add_norm_2", "add residual & LayerNorm", roles["norm"], 5.5))
    return rows


def _draw_encoder_layer(ax, roles, method, n_layers, d_model, n_heads, d_ffn):
    """Right half of the Model M picture: one encoder layer, expanded, with "× n_layers"."""
    left, right, bottom, top = 50, 93, 4, 93
    ax.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom,
                                boxstyle="round,pad=0,rounding_size=1.5", facecolor="none",
                                edgecolor=COLORS["text"], linewidth=1.0, linestyle=":",
                                gid="layer_close_up"))
    for y_from, y_to in ((52, top), (38, bottom)):  # zoom lines from the stack to this close-up
        ax.plot([40, left], [y_from, y_to], color=COLORS["noise"], linewidth=0.8, linestyle=":")
    ax.text((left + right) / 2, top + 3.5, f"one encoder layer, opened up (d_model = {d_model})",
            ha="center", va="center", fontsize=8, style="italic", gid="layer_title")
    ax.text(right + 1.5, 50, f"× {n_layers}", ha="left", va="center", fontsize=13,
            fontweight="bold", gid="n_layers")
    x, res_x = 74, 53.5
    # W_q, W_k, W_v side by side, each with a LoRA path B·A beside W_q and W_v under "lora".
    split_y, qkv_y = 11, 18
    _arrow(ax, (x, bottom), (x, split_y))
    w_xs = ({"W_q": 58.5, "W_k": 72, "W_v": 80.5} if method == "lora"  # room for B·A
            else {"W_q": 61, "W_k": 72, "W_v": 83})
    for name, wx in w_xs.items():
        ax.plot([x, wx], [split_y, split_y], color=COLORS["text"], linewidth=1.3)
        _arrow(ax, (wx, split_y), (wx, qkv_y - 3))
        _box(ax, wx, qkv_y, 6, 6, f"${name}$", roles["weights"], gid=name, fontsize=9)
        _arrow(ax, (wx, qkv_y + 3), (wx, 26))
        if method == "lora" and name in ("W_q", "W_v"):
            _box(ax, wx + 6, qkv_y, 5.2, 6, "B·A", "lora", gid=f"lora_{name[-1]}", fontsize=8)
    rows = _layer_rows(method, roles, d_model, n_heads, d_ffn)
    y, gap = 26, min(5.0, (top - 27 - sum(row[3] for row in rows)) / len(rows))
    for gid, label, role, h in rows:
        _box(ax, x, y + h / 2, 36, h, label, role, gid=gid)
        if gid == "add_norm_1":  # residual from the layer's input
            _line(ax, [(x, split_y - 3), (res_x, split_y - 3), (res_x, y + h / 2),
                       (x - 18, y + h / 2)])
            first_residual_y = y + h + gap / 2
        if gid == "add_norm_2":  # residual from the output of the first add & norm
            _line(ax, [(x, first_residual_y), (res_x, first_residual_y), (res_x, y + h / 2),
                       (x - 18, y + h / 2)])
        y += h
        _arrow(ax, (x, y), (x, top if gid == "add_norm_2" else y + gap))
        y += gap


# ---------------------------------------------------------------------------
# 2. Back-propagation
# ---------------------------------------------------------------------------

_BACKPROP_TITLES = {
    "full": "Back-propagation, full fine-tuning: every weight is updated",
    "frozen": "Back-propagation, frozen encoder: only the head is updated",
    "adapters": "Back-propagation with adapters: the gradient crosses frozen layers",
    "lora": "Back-propagation with LoRA: the gradient crosses frozen weights",
}


def _backprop_status(method: str, block: str, below_all_trained: bool) -> tuple[str, str]:
    """(role, status text) for one block of the back-propagation picture."""
    if method == "full" or block == "head":
        return "trained", "updated: W ← W − η · ∂L/∂W"
    if below_all_trained:
        return "frozen", ("frozen, and nothing below is trained: the\n"
                          "gradient is not needed here (faint arrow)")
    new = "adapters" if method == "adapters" else "LoRA B and A"
    return "frozen", f"frozen: gradient passes through,\nweights unchanged; its {new} are updated"


def draw_backpropagation(method: str = "full"):
    """How the error travels back through Model M, and which weights it changes.

    Forward (black, up): tokens -> embeddings -> encoder layers -> head -> prediction; the loss
    compares the prediction with the label. Backward (vermillion, dashed, down): the gradient
    of the loss flows from the loss into every block below it. A *trained* block uses it to
    update its weights; a *frozen* block (grey, padlock) only passes it on, its weights stay
    as pretrained. With adapters or LoRA the gradient must still cross the frozen layers above
    an adapter to reach it: freezing saves optimizer memory and storage, not the backward pass.
    Below the lowest trained module nothing needs a gradient, so autograd may stop there
    (drawn faint); with a frozen encoder that is everything under the head.
    """
    _check_method(method, BACKPROP_METHODS)
    blocks = ["embeddings", "encoder layer 1", "encoder layer 2", "encoder layer 3", "head"]
    lowest_trained = {"full": 0, "frozen": 4, "adapters": 1, "lora": 1}[method]
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.0, 5.2), _BACKPROP_TITLES[method])
        bx, w, h, step, fwd_x, grad_x = 27, 34, 9, 15, 17, 37
        ax.text(fwd_x, 2.5, "input tokens", ha="center", va="center", fontsize=8.5,
                gid="tokens")
        _arrow(ax, (fwd_x, 5), (fwd_x, 12 - h / 2))
        for i, block in enumerate(blocks):
            y = 12 + step * i
            role, status = _backprop_status(method, block, i < lowest_trained)
            label = "task head (NER / FPB)" if block == "head" else block
            has_new = method in ("adapters", "lora") and block.startswith("encoder")
            _box(ax, bx, y, w, h, label, role, gid=block, label_dx=-5 if has_new else 0)
            if has_new:  # the trained module inside the frozen layer, where the gradient arrives
                new = "adapter" if method == "adapters" else "lora"
                _box(ax, grad_x + 1, y, 10, h - 3.5, "adapters" if new == "adapter" else "B·A",
                     new, gid=f"{new}_{i}", fontsize=7.5)
            if role == "frozen":
                _lock(ax, bx + w / 2 + 3, y + 0.6)
            ax.text(bx + w / 2 + 7, y, status, ha="left", va="center", fontsize=8,
                    color=ROLE_COLORS["trained"] if role == "trained" else COLORS["text"],
                    gid=f"status_{block}")
            _arrow(ax, (grad_x, y + step - h / 2), (grad_x, y + h / 2), color=GRADIENT,
                   dashed=True, gid=f"gradient:{block}", alpha=0.3 if i < lowest_trained else 1)
            _arrow(ax, (fwd_x, y + h / 2), (fwd_x, y + step - h / 2))
        loss_y = 12 + step * len(blocks)
        ax.text(fwd_x - 1.5, loss_y - step / 2, "prediction", ha="right", va="center",
                fontsize=8, gid="prediction")
        _box(ax, bx, loss_y, w, h, "loss L(prediction, label)", "data", gid="loss")
        ax.text(bx + w / 2 + 7, loss_y, "label: the true answer", ha="left", va="center",
                fontsize=8, gid="label")
        _arrow(ax, (bx + w / 2 + 6.5, loss_y), (bx + w / 2, loss_y))
        legend = [("trained", "trained: weights updated")]
        if method != "full":
            legend.append(("frozen", "frozen: weights unchanged"))
        if method in ("adapters", "lora"):
            new = "adapter" if method == "adapters" else "lora"
            legend.append((new, "new module, trained"))
        _legend(fig, legend, [
            Line2D([], [], color=COLORS["text"], label="forward pass"),
            Line2D([], [], color=GRADIENT, linestyle="--", label="gradient ∂L/∂(...)")])
    return fig


# ---------------------------------------------------------------------------
# 3. One adapter, 4. one LoRA layer
# ---------------------------------------------------------------------------

def draw_adapter(d_model: int = 128, bottleneck: int = 16):
    """One Houlsby adapter close up: a bottleneck with its own skip connection.

    The input (size d) is projected down to m << d numbers, passed through a nonlinearity,
    projected back up to d and added to the input. Started with small weights the adapter is
    almost the identity, so the pretrained model is unchanged at the start of fine-tuning.
    With biases it has 2md + d + m parameters (worked out for ``d_model`` and ``bottleneck``).
    """
    _check_positive_int(d_model, "d_model")
    _check_positive_int(bottleneck, "bottleneck")
    d, m = d_model, bottleneck
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.0, 5.0), "A Houlsby adapter: bottleneck plus skip connection")
        x, skip_x = 30, 8
        ax.text(x, 4, f"input h  (d = {d})", ha="center", va="center", fontsize=9, gid="input")
        _arrow(ax, (x, 7), (x, 14))
        _trapezoid(ax, x, 21, 34, 20, 14, f"down-projection\nd → m  ({d} → {m})", "adapter",
                   gid="down")
        _arrow(ax, (x, 28), (x, 34))
        _box(ax, x, 38, 20, 8, "nonlinearity", "adapter", gid="nonlinearity")
        _arrow(ax, (x, 42), (x, 48))
        _trapezoid(ax, x, 55, 20, 34, 14, f"up-projection\nm → d  ({m} → {d})", "adapter",
                   gid="up")
        _arrow(ax, (x, 62), (x, 68.5))
        rx = _sum_node(ax, x, 72)
        _line(ax, [(x, 10), (skip_x, 10), (skip_x, 72), (x - rx, 72)])
        ax.text(skip_x + 1.5, 45, "skip connection", rotation=90, ha="left", va="center",
                fontsize=8, gid="skip")
        _arrow(ax, (x, 75.5), (x, 82))
        ax.text(x, 85, f"output  (d = {d})", ha="center", va="center", fontsize=9, gid="output")
        notes = (f"parameters of one adapter\n"
                 f"down: m·d weights + m biases\n"
                 f"up: d·m weights + d biases\n"
                 f"total: 2md + d + m\n"
                 f"         = 2·{m}·{d} + {d} + {m} = {2 * m * d + d + m:,}\n\n"
                 f"two per encoder layer: after the\n"
                 f"attention output and after the\n"
                 f"feed-forward block\n\n"
                 f"small initial weights: output ≈ input,\n"
                 f"so training starts from the\n"
                 f"pretrained model")
        ax.text(56, 46, notes, ha="left", va="center", fontsize=8.5, linespacing=1.35,
                gid="parameters")
        _legend(fig, [("adapter", "new adapter module, trained")])
    return fig


def draw_lora_layer(d: int = 128, k: int = 128, r: int = 8, alpha: int = 8):
    """A LoRA linear layer: the frozen pretrained path plus a trainable low-rank path.

    The input x (size k) goes through the frozen W0 (d × k) and, in parallel, through A
    (r × k, random init) and B (d × r, zero init), scaled by alpha / r. The two results are
    added: h = W0 x + (alpha/r) B A x. Because B starts at zero the layer starts exactly as the
    pretrained one; after training, B A can be merged into W0 so inference costs nothing extra.
    """
    for name, value in (("d", d), ("k", k), ("r", r), ("alpha", alpha)):
        _check_positive_int(value, name)
    if r > min(d, k):
        raise ValueError(f"r must be at most min(d, k) = {min(d, k)}, got {r}")
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.0, 5.0), "A LoRA layer: frozen W₀ plus a trainable low-rank path")
        x0, xs, xl, top = 19, 33.5, 48, 80  # W0 path, input and sum, LoRA path, the sum's y
        ax.text(xs, 3, f"input x  (k = {k})", ha="center", va="center", fontsize=9, gid="input")
        ax.plot([x0, xl], [8, 8], color=COLORS["text"], linewidth=1.3)
        ax.plot([xs, xs], [6, 8], color=COLORS["text"], linewidth=1.3)
        _arrow(ax, (x0, 8), (x0, 24))
        _box(ax, x0, 44, 28, 40, f"pretrained W₀\nd × k = {d} × {k}\n\nfrozen", "frozen",
             gid="W0", fontsize=9)
        _arrow(ax, (xl, 8), (xl, 13))
        _trapezoid(ax, xl, 20, 26, 12, 14, "A  (r × k)\nrandom init", "lora", gid="A")
        _arrow(ax, (xl, 27), (xl, 33))
        _trapezoid(ax, xl, 40, 12, 26, 14, "B  (d × r)\nzero init", "lora", gid="B")
        _arrow(ax, (xl, 47), (xl, 54))
        _box(ax, xl, 58, 12, 8, f"× α/r\n= {alpha}/{r}", "lora", gid="scale", fontsize=8)
        rx = _sum_node(ax, xs, top)
        _line(ax, [(x0, 64), (x0, top), (xs - rx, top)])
        _line(ax, [(xl, 62), (xl, top), (xs + rx, top)])
        _arrow(ax, (xs, top + 3.5), (xs, 90))
        ax.text(xs, 93, "h = W₀x + (α/r)·B A x   (d)", ha="center", va="center", fontsize=9,
                gid="output")
        notes = (f"trainable: A and B\n"
                 f"   r·(d + k) = {r}·({d} + {k})\n"
                 f"                = {r * (d + k):,}\n"
                 f"frozen: W₀\n"
                 f"   d·k = {d}·{k} = {d * k:,}\n\n"
                 f"B = 0 at the start, so B A = 0:\n"
                 f"the layer starts as the\n"
                 f"pretrained one\n\n"
                 f"merge for inference:\n"
                 f"   W = W₀ + (α/r)·B A\n"
                 f"one matrix again, no extra latency")
        ax.text(66, 47, notes, ha="left", va="center", fontsize=8.5, linespacing=1.35,
                gid="notes")
        _legend(fig, [("frozen", "frozen (pretrained)"), ("lora", "new LoRA module, trained")])
    return fig
