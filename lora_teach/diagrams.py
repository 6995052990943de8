"""Block diagrams of Model M, back-propagation, a Houlsby adapter and a LoRA layer.

The source notes promise three pictures they never draw ("Model M Architecture",
"Back-propagation", "Model M Architecture With Adapters"); this module draws them (Model M
as a whole, and one of its encoder layers opened up, as two pictures whose labels stay readable
on a projector), plus a close-up of one adapter and one LoRA layer. Every picture is drawn *from the object it shows*:
the number of layers and the shapes come from the model's config, what is trained and what is
frozen from its parameters' ``requires_grad``, and where LoRA or adapters sit from the modules
actually inserted. Change the model and the picture follows.

One colour code runs through every picture (the course's :data:`~lora_teach.plotting.COLORS`):

* blue  = trained: these weights are updated by the optimizer (AdamW),
* grey  = frozen: the weights stay exactly as pretrained,
* pink  = a new adapter module (trained), green = a new LoRA module (trained),
* white with a black edge = an operation without weights (attention, the sum),
* vermillion, dashed = the gradient of the loss flowing backwards.

Each function returns its ``Figure`` (it never calls ``plt.show()``), drawn in the course style
without changing the global matplotlib settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import torch
from matplotlib.colors import to_rgba
from matplotlib.lines import Line2D
from matplotlib.patches import Arc, Ellipse, FancyArrowPatch, FancyBboxPatch, Patch, Polygon, Rectangle
from torch import nn

from lora_teach.adapters import PLACES, BottleneckAdapter
from lora_teach.checks import check_instance
from lora_teach.lora import LoRALinear
from lora_teach.lowrank import factorized_parameters
from lora_teach.model import TASKS, ModelM
from lora_teach.plotting import COLORS, COURSE_STYLE, SMALL

#: Edge colour of a box for each role; its face is the same colour, made light (FILL_ALPHA).
ROLE_COLORS = {
    "trained": COLORS["trained"],
    "frozen": COLORS["frozen"],
    "adapter": COLORS["adapter"],
    "lora": COLORS["lora"],
    "op": COLORS["text"],        # an operation without weights (attention, +)
    "unused": COLORS["frozen"],  # a head that takes no part in this run
    "data": COLORS["text"],      # inputs, outputs, the loss
}
FILL_ALPHA = 0.22
GRADIENT = COLORS["error"]   # the gradient is the error signal, sent backwards
TOKENS = "[CLS] shares of Morgan rose [SEP] ..."
MATRICES = ("W_q", "W_k", "W_v", "W_o", "ffn_in", "ffn_out")   # the weight matrices of a layer
HEAD_LABELS = {"mlm": ("MLM", "masked\nwords"), "nsp": ("NSP", "next\nsentence?"),
               "ner": ("NER", "tag per\ntoken"), "fpb": ("FPB", "sentence\nsentiment")}


# ---------------------------------------------------------------------------
# Reading the model: what the picture must show
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelView:
    """What a picture of Model M shows, read off a (possibly wrapped) model object."""

    n_layers: int
    d_model: int
    n_heads: int
    d_ffn: int
    vocab_size: int
    roles: dict            # block -> "trained" | "frozen" ("W_q", "embeddings", "norms", ...)
    heads: dict            # task -> "trained" | "unused"
    lora: dict             # matrix name -> r, for the matrices wrapped with LoRA
    adapters: dict         # place ("attention" / "output") -> bottleneck size m
    head_reads: dict = field(default_factory=dict)   # task -> "cls" (the [CLS] vector) | "tokens"
    layer_trained: tuple = ()   # the parts of a layer (LAYER_PARTS) holding a trained parameter

    @property
    def encoder_trained(self) -> bool:
        """True if every weight of the encoder is trained (pretraining, full fine-tuning)."""
        return all(role == "trained" for role in self.roles.values())


def _role(parameters) -> str:
    parameters = list(parameters)
    return "trained" if parameters and all(p.requires_grad for p in parameters) else "frozen"


def _matrix(layer, name: str) -> nn.Module:
    block = layer.attention if name.startswith("W_") else layer.feed_forward
    return getattr(block, name)


#: The parts of an encoder layer in the order the forward pass reaches them (W_q, W_k and W_v
#: side by side); the backward pass meets them in the opposite order.
LAYER_PARTS = (("W_q", "W_k", "W_v"), ("W_o",), ("attention_adapter",), ("attention_norm",),
               ("ffn_in",), ("ffn_out",), ("output_adapter",), ("output_norm",))


def _part(layer, name: str) -> nn.Module:
    return _matrix(layer, name) if name in MATRICES else getattr(layer, name)


def _layer_trained(layer) -> tuple:
    """The parts of ``layer`` holding a parameter with ``requires_grad``, in forward order."""
    return tuple(name for step in LAYER_PARTS for name in step
                 if any(p.requires_grad for p in _part(layer, name).parameters()))


def _head_reads(model: ModelM) -> dict:
    """What each head reads, found by asking the model: one token through ``model(task, ...)``
    gives logits per position (B, T, classes) for a head applied at every token, and
    (B, classes) for a head that reads one vector per input: the [CLS] position's."""
    weight = model.token_embedding.weight
    ids = torch.zeros((1, 1), dtype=torch.long, device=weight.device)
    with torch.no_grad():
        return {task: "tokens" if model(task, ids).dim() == 3 else "cls" for task in TASKS}


def read_model(model: ModelM) -> ModelView:
    """The facts a picture needs: shapes from the config, trained or frozen from
    ``requires_grad``, LoRA and adapters from the modules present. All encoder layers must be
    set up alike (as add_lora and add_adapters do)."""
    check_instance(model, "model", ModelM)
    views = []
    for layer in model.layers:
        roles, lora, adapters = {}, {}, {}
        for name in MATRICES:
            module = _matrix(layer, name)
            if isinstance(module, LoRALinear):
                lora[name] = module.r
                module = module.base
            roles[name] = _role(module.parameters())
        roles["norms"] = _role(list(layer.attention_norm.parameters())
                               + list(layer.output_norm.parameters()))
        for place, attribute in PLACES.items():
            module = getattr(layer, attribute)
            if isinstance(module, BottleneckAdapter):
                adapters[place] = module.config["bottleneck"]
        views.append((roles, lora, adapters, _layer_trained(layer)))
    if any(view != views[0] for view in views):
        raise ValueError("the encoder layers of this model are set up differently; the picture "
                         "draws one layer for all of them")
    roles, lora, adapters, layer_trained = views[0]
    embeddings = [p for name, p in model.named_parameters()
                  if name.split(".")[0] in ("token_embedding", "position_embedding",
                                            "segment_embedding")]
    roles = {"embeddings": _role(embeddings),
             "embedding_norm": _role(model.embedding_norm.parameters()), **roles}
    heads = {task: "trained" if _role(model.heads[task].parameters()) == "trained" else "unused"
             for task in TASKS}
    config = model.config
    return ModelView(config.n_layers, config.d_model, config.n_heads, config.d_ffn,
                     config.vocab_size, roles, heads, lora, adapters, _head_reads(model),
                     layer_trained)


def _names(matrices) -> str:
    return ", ".join(f"${name}$" if name.startswith("W_") else name for name in matrices)


def model_title(view: ModelView) -> str:
    """A title that says what this model trains, e.g. "Model M with LoRA on W_q, W_v (r = 8)"."""
    check_instance(view, "view", ModelView)
    trained_heads = [HEAD_LABELS[t][0] for t, role in view.heads.items() if role == "trained"]
    heads = " + ".join(trained_heads) or "no head"
    if view.lora:
        ranks = sorted(set(view.lora.values()))
        r = ranks[0] if len(ranks) == 1 else ranks
        where = (_names(view.lora) if len(view.lora) <= 3 else "all 6 matrices"
                 if len(view.lora) == len(MATRICES) else f"{len(view.lora)} matrices")
        return f"Model M with LoRA on {where} (r = {r}): B·A and the {heads} head trained"
    if view.adapters:
        sizes = sorted(set(view.adapters.values()))
        m = sizes[0] if len(sizes) == 1 else sizes
        return f"Model M with adapters (m = {m}): adapters, LayerNorms and {heads} head trained"
    if view.encoder_trained:
        what = "pretraining on" if {"MLM", "NSP"} <= set(trained_heads) else "full fine-tuning,"
        return f"Model M, {what} {heads}: every weight is trained"
    if all(role == "frozen" for role in view.roles.values()):
        return f"Model M, frozen encoder: only the {heads} head is trained"
    return f"Model M: trained parts in blue, frozen in grey ({heads} head)"


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


def _box(ax, x, y, w, h, label, role, gid=None, label_dx=0.0):
    """A rounded box centred at (x, y), coloured by its ``role``, with ``label`` inside
    (shifted sideways by ``label_dx`` when something else shares the box), at the course's
    smallest size, SMALL, like every label in these pictures.

    The box and its text share the ``gid`` so that a test can find them again.
    """
    color = ROLE_COLORS[role]
    face = "white" if role in ("op", "unused", "data") else to_rgba(color, FILL_ALPHA)
    patch = FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0,rounding_size=1",
                           facecolor=face, edgecolor=color, linewidth=1.4,
                           linestyle="--" if role == "unused" else "-", gid=gid, zorder=2)
    ax.add_patch(patch)
    ax.text(x + label_dx, y, label, ha="center", va="center", fontsize=SMALL, gid=gid,
            zorder=4, color=COLORS["frozen"] if role == "unused" else COLORS["text"])
    return patch


def _trapezoid(ax, x, y, bottom_w, top_w, h, label, role, gid=None):
    """A trapezoid centred at (x, y): wide-to-narrow is a down-projection, narrow-to-wide up."""
    color = ROLE_COLORS[role]
    corners = [(x - bottom_w / 2, y - h / 2), (x + bottom_w / 2, y - h / 2),
               (x + top_w / 2, y + h / 2), (x - top_w / 2, y + h / 2)]
    ax.add_patch(Polygon(corners, facecolor=to_rgba(color, FILL_ALPHA), edgecolor=color,
                         linewidth=1.4, gid=gid, zorder=2))
    ax.text(x, y, label, ha="center", va="center", fontsize=SMALL, gid=gid, zorder=4)


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
    # hung below the drawing, so that a second row of entries never covers it
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02),
               ncol=3 if len(handles) <= 3 else 2, fontsize=SMALL,
               frameon=False, handlelength=1.4, columnspacing=0.9)


def _sum_node(ax, x, y, ry=3.5):
    """A round "+" node at (x, y), ``ry`` units tall; returns its half-width in x units
    (the drawing area is not square, so a circle is an ellipse in data units)."""
    width, height = ax.get_position().size * ax.figure.get_size_inches()
    rx = ry * height / width
    ax.add_patch(Ellipse((x, y), 2 * rx, 2 * ry, facecolor="white", edgecolor=COLORS["text"],
                         linewidth=1.4, gid="sum", zorder=2))
    ax.text(x, y, "+", ha="center", va="center", fontsize=13, gid="sum", zorder=4)
    return rx


def _lock(ax, x, y, color=COLORS["frozen"]):
    """A small padlock (a body and an arc-shaped shackle): "these weights cannot change"."""
    ax.add_patch(Rectangle((x - 1.1, y - 2.2), 2.2, 2.2, facecolor=color, edgecolor=color,
                           zorder=4, gid="lock"))
    ax.add_patch(Arc((x, y), 1.6, 2.6, theta1=0, theta2=180, color=color, linewidth=1.6,
                     zorder=4, gid="lock"))


# ---------------------------------------------------------------------------
# 1. Model M
# ---------------------------------------------------------------------------

def _model_legend(view: ModelView, layer: bool) -> list:
    """The legend entries of the whole-model picture (``layer=False``) or of the close-up of
    one layer: (role, label) pairs, only for what that picture draws."""
    if layer:
        roles = {view.roles[name] for name in (*MATRICES, "norms")}
    else:
        roles = {view.roles["embeddings"], view.roles["embedding_norm"],
                 "trained" if view.encoder_trained else "frozen", *view.heads.values()}
    legend = [(role, label) for role, label in (("trained", "trained (updated by AdamW)"),
                                                ("frozen", "frozen (not updated)"))
              if role in roles]
    if layer:
        if view.adapters:
            legend.append(("adapter", "new module: adapter, trained"))
        if view.lora:
            legend.append(("lora", "new module: LoRA B·A, trained"))
        legend.append(("op", "operation without weights"))
    elif "unused" in roles:
        legend.append(("unused", "head not trained in this run"))
    return legend


def draw_model_m(model: ModelM, title: str | None = None):
    """Model M, the small BERT-style encoder of the course, drawn from input tokens to heads.

    Bottom to top: tokens, summed token + position + segment embeddings, LayerNorm, the stack
    of encoder layers (:func:`draw_encoder_layer` opens one up), its output (one vector per
    token, the [CLS] vector first) and the four heads (MLM and NSP for pretraining, NER and
    FPB for the fine-tuning tasks). A sentence-level head (NSP, FPB) is fed by one arrow from
    the [CLS] vector, a token-level head (MLM, NER) by arrows from the whole row: which is which
    is asked of the model itself (the shape of its logits).

    Colours come from the model: blue where parameters are trained, grey where they are
    frozen. A head that is not trained in this run is drawn dashed.
    """
    view = read_model(model)
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.6, 5.0), title or model_title(view))
        _draw_model_stack(ax, view)
        _legend(fig, _model_legend(view, layer=False))
    return fig


def draw_encoder_layer(model: ModelM, title: str | None = None):
    """One encoder layer of Model M opened up (post-LN, as in BERT), with its weight matrices
    and their shapes, read from the model like :func:`draw_model_m`: blue where trained, grey
    where frozen, pink adapters and green LoRA paths B·A where the model has them."""
    view = read_model(model)
    if title is None:
        title = f"One of the {view.n_layers} encoder layers, opened up (d_model = {view.d_model})"
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.6, 5.4), title)
        _draw_encoder_layer(ax, view)
        _legend(fig, _model_legend(view, layer=True))
    return fig


def _draw_model_stack(ax, view: ModelView):
    """Model M bottom to top: tokens -> embeddings -> LayerNorm -> layers -> output -> heads."""
    x = 50
    ax.text(x, 2.5, TOKENS, ha="center", va="center", fontsize=SMALL, family="monospace",
            gid="tokens")
    _arrow(ax, (x, 5.5), (x, 8.5))
    shape = f"vocab × d = {view.vocab_size:,} × {view.d_model:,}"
    _box(ax, x, 14, 58, 11, f"embeddings: token + position + segment\n(summed)   {shape}",
         view.roles["embeddings"], gid="embeddings")
    _arrow(ax, (x, 19.5), (x, 23))
    _box(ax, x, 26.5, 58, 7, "LayerNorm", view.roles["embedding_norm"], gid="embedding_norm")
    _arrow(ax, (x, 30), (x, 34))
    if view.lora:
        where = _names(view.lora) if len(view.lora) <= 3 else f"{len(view.lora)} matrices"
        extra = f"\n(+ LoRA on {where})"
    elif view.adapters:
        extra = f"\n(+ {len(view.adapters)} adapter{'s' if len(view.adapters) > 1 else ''} each)"
    else:
        extra = ""
    layer_role = "trained" if view.encoder_trained else "frozen"
    for shift in (2.4, 1.2):  # two shadows behind the box: "there are several of these"
        ax.add_patch(FancyBboxPatch((x - 20 + shift, 34 + shift), 40, 12,
                                    boxstyle="round,pad=0,rounding_size=1", facecolor="white",
                                    edgecolor=ROLE_COLORS[layer_role], linewidth=1.0))
    _box(ax, x, 40, 40, 12, f"encoder layer × {view.n_layers}" + extra, layer_role,
         gid="encoder_stack")
    ax.text(x + 25, 40, "opened up in\nthe next picture", ha="left", va="center",
            fontsize=SMALL, style="italic", color=COLORS["text"], gid="next_picture")
    _draw_heads(ax, view, x, stack_top=48.4)


#: A head's role in the course: pretraining (MLM, NSP) or a fine-tuning task (NER, FPB).
HEAD_PURPOSE = {"mlm": "pretraining", "nsp": "pretraining", "ner": "task", "fpb": "task"}


def _draw_heads(ax, view: ModelView, x, stack_top):
    """The encoder's output, one vector per token with the [CLS] vector first, and the heads
    that read it: a sentence-level head reads the [CLS] vector alone (one arrow from it), a
    token-level head reads every token's vector (three arrows from the whole row: one
    prediction per token). Which head reads what comes from the model (``view.head_reads``);
    the heads that read the [CLS] vector stand above it, on the left."""
    left, right, bottom, height, cls_w = 4, 96, 52, 6, 12
    _arrow(ax, (x, stack_top), (x, bottom))
    _box(ax, (left + right) / 2, bottom + height / 2, right - left, height, "", "data",
         gid="encoder_output")
    ax.text((left + cls_w + right) / 2, bottom + height / 2, "output: one vector per token",
            ha="center", va="center", fontsize=SMALL, gid="encoder_output", zorder=4)
    cls_x = left + cls_w / 2
    _box(ax, cls_x, bottom + height / 2, cls_w, height, "[CLS]", "data", gid="cls_vector")
    reads = {task: view.head_reads.get(task, "tokens") for task in TASKS}
    order = sorted(TASKS, key=lambda task: reads[task] != "cls")   # [CLS] readers first
    top, head_y, head_h, head_w = bottom + height, 77, 20, 20
    xs = {task: left + head_w / 2 + 24 * i for i, task in enumerate(order)}
    for task, hx in xs.items():
        name, what = HEAD_LABELS[task]
        if reads[task] == "cls":
            _arrow(ax, (cls_x, top), (hx, head_y - head_h / 2), gid=f"reads_cls:{name}")
        else:
            for dx in (-5, 0, 5):   # the same head at every position
                _arrow(ax, (hx + dx, top), (hx + dx, head_y - head_h / 2), gid=f"reads_tokens:{name}")
        _box(ax, hx, head_y, head_w, head_h, f"{name}\n{what}\n({HEAD_PURPOSE[task]})",
             view.heads[task], gid=f"head_{name}")
    for kind, caption in (("cls", "read the [CLS] vector only"), ("tokens", "read every token")):
        placed = [hx for task, hx in xs.items() if reads[task] == kind]
        if placed:
            ax.text(sum(placed) / len(placed), head_y + head_h / 2 + 2.5, caption, ha="center",
                    fontsize=SMALL, gid=f"label_{kind}")


def _layer_rows(view: ModelView):
    """The sub-blocks of one encoder layer above W_q/W_k/W_v, bottom to top:
    (gid, label, role, height)."""
    d, f, heads = view.d_model, view.d_ffn, view.n_heads
    rows = [("attention", f"multi-head self-attention (no weights)\n"
                          f"{heads} heads × {d // heads} dims", "op", 10),
            ("W_o", f"$W_o$  output projection {d}→{d}", view.roles["W_o"], 6)]
    if "attention" in view.adapters:
        rows.append(("adapter_1", f"adapter 1  (d → m → d, m = {view.adapters['attention']})",
                     "adapter", 6))
    rows += [("add_norm_1", "add residual & LayerNorm", view.roles["norms"], 6),
             ("ffn_in", f"feed-forward: ffn_in {d}→{f}, GELU", view.roles["ffn_in"], 6),
             ("ffn_out", f"feed-forward: ffn_out {f}→{d}", view.roles["ffn_out"], 6)]
    if "output" in view.adapters:
        rows.append(("adapter_2", f"adapter 2  (d → m → d, m = {view.adapters['output']})",
                     "adapter", 6))
    rows.append(("add_norm_2", "add residual & LayerNorm", view.roles["norms"], 6))
    return rows


def _draw_encoder_layer(ax, view: ModelView):
    """One encoder layer, bottom to top: W_q, W_k, W_v, attention, W_o, add & norm,
    feed-forward, add & norm, with the residual connections on the left."""
    left, right, bottom, top = 3, 97, 1, 99
    ax.add_patch(FancyBboxPatch((left, bottom), right - left, top - bottom,
                                boxstyle="round,pad=0,rounding_size=1.5", facecolor="none",
                                edgecolor=COLORS["text"], linewidth=1.0, linestyle=":",
                                gid="layer_close_up"))
    x, res_x, row_w = 56, 10, 66
    # W_q, W_k, W_v side by side, each with its LoRA path B·A beside it when it has one.
    split_y, qkv_y, qkv_h = 8, 15, 7
    _arrow(ax, (x, bottom), (x, split_y))
    w_xs = {"W_q": x - 22, "W_k": x, "W_v": x + 22}
    for name, wx in w_xs.items():
        ax.plot([x, wx], [split_y, split_y], color=COLORS["text"], linewidth=1.3)
        _arrow(ax, (wx, split_y), (wx, qkv_y - qkv_h / 2))
        _box(ax, wx, qkv_y, 9, qkv_h, f"${name}$", view.roles[name], gid=name)
        _arrow(ax, (wx, qkv_y + qkv_h / 2), (wx, 24))
        if name in view.lora:
            _box(ax, wx + 10, qkv_y, 9, qkv_h, "B·A", "lora", gid=f"lora_{name}")
    rows = _layer_rows(view)
    y, gap = 24, min(5.0, (top - 2 - 24 - sum(row[3] for row in rows)) / len(rows))
    for gid, label, role, h in rows:
        if gid in view.lora:   # a narrower box with its B·A beside it
            _box(ax, x - 5.5, y + h / 2, row_w - 11, h, label.removeprefix("feed-forward: "),
                 role, gid=gid)
            _box(ax, x + row_w / 2 - 4.5, y + h / 2, 9, h, "B·A", "lora", gid=f"lora_{gid}")
        else:
            _box(ax, x, y + h / 2, row_w, h, label, role, gid=gid)
        if gid == "add_norm_1":  # residual from the layer's input
            _line(ax, [(x, split_y - 3), (res_x, split_y - 3), (res_x, y + h / 2),
                       (x - row_w / 2, y + h / 2)])
            first_residual_y = y + h + gap / 2
        if gid == "add_norm_2":  # residual from the output of the first add & norm
            _line(ax, [(x, first_residual_y), (res_x, first_residual_y), (res_x, y + h / 2),
                       (x - row_w / 2, y + h / 2)])
        y += h
        _arrow(ax, (x, y), (x, top if gid == "add_norm_2" else y + gap))
        y += gap


# ---------------------------------------------------------------------------
# 2. Back-propagation
# ---------------------------------------------------------------------------

UPDATE = "updated by AdamW from ∂L/∂W"
NOT_REACHED = "frozen, and not reached by the gradient"
PART_NAMES = {"attention_adapter": "adapter 1 (after $W_o$)",
              "output_adapter": "adapter 2 (after the feed-forward)",
              "attention_norm": "the first LayerNorm", "output_norm": "the second LayerNorm"}


def _inside(view: ModelView) -> str:
    """What is trained inside a frozen encoder layer, e.g. "its B·A" or "its adapters and
    LayerNorms" ("" if nothing), read from ``view.layer_trained``."""
    trained = set(view.layer_trained)
    lora_only = [n for n in MATRICES if n in trained and n in view.lora and view.roles[n] == "frozen"]
    whole = [n for n in MATRICES if n in trained and n not in lora_only]
    adapters = trained & {"attention_adapter", "output_adapter"}
    norms = trained & {"attention_norm", "output_norm"}
    parts = (["B·A"] if lora_only else []) + ([_names(whole)] if whole else []) + (
        ["adapters" if len(adapters) > 1 else "adapter"] if adapters else []) + (
        ["LayerNorms" if len(norms) > 1 else "LayerNorm"] if norms else [])
    return "its " + " and ".join(parts) if parts else ""


def _lowest_part(view: ModelView) -> str:
    """The first part of an encoder layer, in forward order, that is trained: where the
    backward pass through that layer can stop (e.g. "adapter 1 (after $W_o$)")."""
    for step in LAYER_PARTS:
        names = [name for name in step if name in view.layer_trained]
        if not names:
            continue
        if names[0] not in MATRICES:
            return PART_NAMES[names[0]]
        lora_only = [n for n in names if n in view.lora and view.roles[n] == "frozen"]
        whole = [n for n in names if n not in lora_only]
        return " and ".join(([f"the B·A of {_names(lora_only)}"] if lora_only else [])
                            + ([_names(whole)] if whole else []))
    return "it"


def _statuses(view: ModelView, blocks, learns, lowest) -> list[str]:
    """The words beside each block of the back-propagation picture (bottom to top)."""
    inside = _inside(view)
    are = "are" if " and " in inside or inside.endswith("s") else "is"
    statuses = []
    for i, ((block, role), learn) in enumerate(zip(blocks, learns)):
        if i < lowest:
            statuses.append(NOT_REACHED)
            continue
        stop = i == lowest and lowest > 0   # frozen blocks below: the backward pass ends here
        if role == "trained":
            status = UPDATE
        elif learn:   # a frozen layer with trained modules inside
            status = (f"frozen; {inside} {are} updated;" if stop else
                      f"frozen: the gradient passes through;\n{inside} {are} updated")
        else:
            status = "frozen: the gradient passes through,\nweights unchanged"
        if stop:
            where = "the head" if block == "head" else _lowest_part(view)
            status += f"\nthe backward pass stops at {where}:\nnothing below it is trained"
        statuses.append(status)
    return statuses


def draw_backpropagation(model: ModelM, title: str | None = None):
    """How the error travels back through this model, and which weights it changes.

    Forward (black, up): tokens -> embeddings -> encoder layers -> head -> prediction; the loss
    compares the prediction with the label. Backward (vermillion, dashed, down): the gradient
    of the loss flows from the loss into the blocks below it. A *trained* block (blue) hands
    its gradient to AdamW, which updates its weights; a *frozen* block (grey, padlock) only
    passes the gradient on. With adapters or LoRA the gradient must still cross the frozen
    layers above an adapter to reach it: freezing saves optimizer memory and storage, not the
    backward pass. Below the lowest trained module nothing needs a gradient, so autograd stops
    there: the gradient arrows end at that block, a bar marks the stop, and its words name the
    module (e.g. layer 1's first adapter), all read from the parameters' ``requires_grad``.
    Blocks that share their words (three trained blocks, two frozen layers) share one bracket
    and say them once.
    """
    view = read_model(model)
    trained_heads = [HEAD_LABELS[t][0] for t, role in view.heads.items() if role == "trained"]
    layer_role = "trained" if view.encoder_trained else "frozen"
    blocks = ([("embeddings", view.roles["embeddings"])]
              + [(f"encoder layer {i + 1}", layer_role) for i in range(view.n_layers)]
              + [("head", "trained" if trained_heads else "frozen")])
    learns = [view.roles["embeddings"] == "trained"] + [bool(view.layer_trained)] * view.n_layers + [
        bool(trained_heads)]
    lowest = learns.index(True) if any(learns) else len(blocks)
    if title is None:
        title = ("Back-propagation: every weight is updated" if view.encoder_trained else
                 "Back-propagation: nothing is trained" if lowest == len(blocks) else
                 "Back-propagation: the gradient crosses frozen weights" if lowest < len(blocks) - 1
                 else "Back-propagation, frozen encoder: only the head is updated")
    statuses = _statuses(view, blocks, learns, lowest)
    step = min(19.0, 76.0 / len(blocks))
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.6, 5.4), title)
        bx, w, h, fwd_x, grad_x = 23, 36, min(9.0, step - 5), 12, 34
        ax.text(fwd_x, 2.5, "input tokens", ha="center", va="center", fontsize=SMALL,
                gid="tokens")
        _arrow(ax, (fwd_x, 5), (fwd_x, 12 - h / 2))
        for i, (block, role) in enumerate(blocks):
            y = 12 + step * i
            if block == "head":
                names = " + ".join(trained_heads) or "none trained"
                label = f"{'heads' if len(trained_heads) > 1 else 'task head'} ({names})"
            else:
                label = block
            has_new = block.startswith("encoder") and (view.lora or view.adapters)
            _box(ax, bx, y, w, h, label, role, gid=block, label_dx=-6.5 if has_new else 0)
            if has_new:  # the trained module inside the frozen layer, where the gradient arrives
                new = "lora" if view.lora else "adapter"
                _box(ax, grad_x + 0.5, y, 11, h - 3,
                     "B·A" if view.lora else "adapters" if len(view.adapters) > 1 else "adapter",
                     new, gid=f"{new}_{i}")
            if role == "frozen":
                _lock(ax, bx + w / 2 + 3, y + 0.6)
            if i >= lowest:   # the gradient reaches this block, from the one above
                _arrow(ax, (grad_x, y + step - h / 2), (grad_x, y + h / 2), color=GRADIENT,
                       dashed=True, gid=f"gradient:{block}")
            if i == lowest and lowest > 0:   # ...and goes no further down
                ax.plot([grad_x - 2.5, grad_x + 2.5], [y - h / 2 - 1.2] * 2, color=GRADIENT,
                        linewidth=2.5, solid_capstyle="butt", gid="gradient_stop", zorder=3)
            _arrow(ax, (fwd_x, y + h / 2), (fwd_x, y + step - h / 2))
        _draw_statuses(ax, blocks, statuses, [12 + step * i for i in range(len(blocks))], h,
                       x=bx + w / 2 + 6)
        loss_y = 12 + step * len(blocks)
        ax.text(fwd_x + 1.5, loss_y - step / 2, "prediction", ha="left", va="center",
                fontsize=SMALL, gid="prediction")
        _box(ax, bx, loss_y, w, h, "loss L(prediction, label)", "data", gid="loss")
        ax.text(bx + w / 2 + 7, loss_y, "label: the true answer", ha="left", va="center",
                fontsize=SMALL, gid="label")
        _arrow(ax, (bx + w / 2 + 6.5, loss_y), (bx + w / 2, loss_y))
        legend = [("trained", "trained")]
        if any(role == "frozen" for _, role in blocks):
            legend.append(("frozen", "frozen (padlock)"))
        if view.lora:
            legend.append(("lora", "new LoRA module, trained"))
        if view.adapters:
            legend.append(("adapter", "new adapter module, trained"))
        extra = [Line2D([], [], color=COLORS["text"], label="forward pass"),
                 Line2D([], [], color=GRADIENT, linestyle="--", label="gradient ∂L/∂(...)")]
        if 0 < lowest < len(blocks):
            extra.append(Line2D([], [], color=GRADIENT, linewidth=2.5, linestyle="none",
                                marker="_", markersize=12, markeredgewidth=2.5,
                                label="backward pass stops"))
        _legend(fig, legend, extra)
    return fig


def _draw_statuses(ax, blocks, statuses, ys, h, x):
    """Each run of blocks with the same words gets them once: beside a single block, or beside
    a bracket spanning the run. A text's gid names its blocks: "status_head",
    "status_encoder layer 1 + encoder layer 2"."""
    i = 0
    while i < len(blocks):
        j = i
        while j + 1 < len(blocks) and statuses[j + 1] == statuses[i]:
            j += 1
        gid = "status_" + " + ".join(block for block, _ in blocks[i:j + 1])
        color = ROLE_COLORS["trained"] if statuses[i].startswith(UPDATE) else COLORS["text"]
        if j > i:
            low, high = ys[i] - h / 2, ys[j] + h / 2
            ax.plot([x - 1, x, x, x - 1], [low, low, high, high], color=color, linewidth=1.2,
                    gid="bracket", zorder=3)
        ax.text(x + 1.5, (ys[i] + ys[j]) / 2, statuses[i], ha="left", va="center", fontsize=SMALL,
                color=color, gid=gid)
        i = j + 1


# ---------------------------------------------------------------------------
# 3. One adapter, 4. one LoRA layer
# ---------------------------------------------------------------------------

def draw_adapter(adapter: BottleneckAdapter):
    """One Houlsby adapter close up: a bottleneck with its own skip connection.

    The input (size d) is projected down to m << d numbers, passed through a nonlinearity,
    projected back up to d and added to the input. Started with small weights the adapter is
    almost the identity, so the pretrained model is unchanged at the start of fine-tuning.
    With biases it has 2md + d + m parameters, counted from the module itself.
    """
    check_instance(adapter, "adapter", BottleneckAdapter)
    d, m = adapter.down.in_features, adapter.down.out_features
    count = sum(p.numel() for p in adapter.parameters())
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.0, 5.0), "A Houlsby adapter: bottleneck plus skip connection")
        x, skip_x = 30, 8
        ax.text(x, 4, f"input h  (d = {d})", ha="center", va="center", fontsize=SMALL, gid="input")
        _arrow(ax, (x, 7), (x, 14))
        _trapezoid(ax, x, 21, 34, 20, 14, f"down-projection\nd → m  ({d} → {m})", "adapter",
                   gid="down")
        _arrow(ax, (x, 28), (x, 34))
        _box(ax, x, 38, 20, 8, "GELU", "adapter", gid="nonlinearity")
        _arrow(ax, (x, 42), (x, 48))
        _trapezoid(ax, x, 55, 20, 34, 14, f"up-projection\nm → d  ({m} → {d})", "adapter",
                   gid="up")
        _arrow(ax, (x, 62), (x, 68.5))
        rx = _sum_node(ax, x, 72)
        _line(ax, [(x, 10), (skip_x, 10), (skip_x, 72), (x - rx, 72)])
        ax.text(skip_x + 1.5, 45, "skip connection", rotation=90, ha="left", va="center",
                fontsize=SMALL, gid="skip")
        _arrow(ax, (x, 75.5), (x, 82))
        ax.text(x, 85, f"output  (d = {d})", ha="center", va="center", fontsize=SMALL, gid="output")
        notes = (f"parameters of one adapter\n"
                 f"down: m·d weights + m biases\n"
                 f"up: d·m weights + d biases\n"
                 f"total: 2md + d + m\n"
                 f"   = 2·{m}·{d} + {d} + {m}\n"
                 f"   = {count:,}\n\n"
                 f"two per encoder layer: after the\n"
                 f"attention output and after the\n"
                 f"feed-forward block\n\n"
                 f"small initial weights: output ≈ input,\n"
                 f"so training starts from the\n"
                 f"pretrained model")
        ax.text(56, 46, notes, ha="left", va="center", fontsize=SMALL, linespacing=1.35,
                gid="parameters")
        _legend(fig, [("adapter", "new adapter module, trained"),
                      ("op", "operation without weights")])
    return fig


def draw_lora_layer(layer: LoRALinear):
    """A LoRA linear layer: the frozen pretrained path plus a trainable low-rank path.

    The input x (size k) goes through the frozen W0 (d × k) and, in parallel, through A
    (r × k, random init) and B (d × r, zero init), scaled by alpha / r. The two results are
    added: h = W0 x + (alpha/r) B A x. Because B starts at zero the layer starts exactly as the
    pretrained one; after training, B A can be merged into W0 so inference costs nothing extra.
    Shapes, r and alpha are read from the layer.
    """
    check_instance(layer, "layer", LoRALinear)
    d, k, r = layer.base.out_features, layer.base.in_features, layer.r
    alpha = f"{layer.alpha:g}"
    with plt.rc_context(COURSE_STYLE):
        fig, ax = _canvas((7.0, 5.0), "A LoRA layer: frozen W₀ plus a trainable low-rank path")
        x0, xs, xl, top = 19, 33.5, 48, 80  # W0 path, input and sum, LoRA path, the sum's y
        ax.text(xs, 3, f"input x  (k = {k})", ha="center", va="center", fontsize=SMALL, gid="input")
        ax.plot([x0, xl], [8, 8], color=COLORS["text"], linewidth=1.3)
        ax.plot([xs, xs], [6, 8], color=COLORS["text"], linewidth=1.3)
        _arrow(ax, (x0, 8), (x0, 24))
        _box(ax, x0, 44, 28, 40, f"pretrained W₀\nd × k = {d} × {k}\n\nfrozen", "frozen",
             gid="W0")
        _arrow(ax, (xl, 8), (xl, 13))
        _trapezoid(ax, xl, 20, 26, 12, 14, "A  (r × k)\nrandom init", "lora", gid="A")
        _arrow(ax, (xl, 27), (xl, 33))
        _trapezoid(ax, xl, 40, 12, 26, 14, "B  (d × r)\nzero init", "lora", gid="B")
        _arrow(ax, (xl, 47), (xl, 54))
        _box(ax, xl, 58.5, 13, 10, f"× α/r\n= {alpha}/{r}", "lora", gid="scale")
        rx = _sum_node(ax, xs, top)
        _line(ax, [(x0, 64), (x0, top), (xs - rx, top)])
        _line(ax, [(xl, 63.5), (xl, top), (xs + rx, top)])
        _arrow(ax, (xs, top + 3.5), (xs, 90))
        ax.text(xs, 93, "h = W₀x + (α/r)·B A x   (d)", ha="center", va="center", fontsize=SMALL,
                gid="output")
        notes = (f"trainable: A and B\n"
                 f"   r·(d + k) = {r}·({d} + {k})\n"
                 f"   = {factorized_parameters(d, k, r):,}\n"
                 f"frozen: W₀\n"
                 f"   d·k = {d}·{k}\n"
                 f"   = {d * k:,}\n\n"
                 f"B = 0 at the start, so B A = 0:\n"
                 f"the layer starts as the\n"
                 f"pretrained one\n\n"
                 f"merge for inference:\n"
                 f"   W = W₀ + (α/r)·B A\n"
                 f"one matrix again,\n"
                 f"no extra latency")
        ax.text(64, 47, notes, ha="left", va="center", fontsize=SMALL, linespacing=1.35,
                gid="notes")
        _legend(fig, [("frozen", "frozen (pretrained)"), ("lora", "new LoRA module, trained"),
                      ("op", "operation without weights")])
    return fig
