"""One plot style for the whole course, and the pictures notebooks 01 and 02 draw.

Every figure in the course uses :data:`COLORS` for the same meaning everywhere: a pivot
(independent) column and a frozen weight are drawn in the same calm colours in every notebook,
trained weights in the same warm ones. Call :func:`use_course_style` once at the top of a
notebook; every function here returns its ``Figure`` so a notebook can save or tweak it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import matplotlib
import matplotlib.figure
import matplotlib.lines
import matplotlib.patches
import matplotlib.pyplot as plt
import numpy as np

from lora_teach.alt_text import describe_figures_in_outputs
from lora_teach.checks import check_array, check_instance, check_int, check_names, check_real, check_sequence
from lora_teach.comparison import runs_by_seed, score_interval
from lora_teach.linalg import as_float_array, column_name

# One palette for the whole course (Okabe-Ito, safe for colour-blind readers), one meaning
# per colour. Every figure that uses a colour says what it means in its legend.
COLORS = {
    "pivot": "#56B4E9",       # sky blue: independent (pivot) columns
    "dependent": "#E69F00",   # orange: dependent columns, built from the pivot columns
    "trained": "#0072B2",     # blue: trained weights; full fine-tuning, which trains them all
    "frozen": "#999999",      # grey: frozen weights, the frozen encoder, discarded parts, noise
    "adapter": "#CC79A7",     # pink: adapters
    "lora": "#009E73",        # green: LoRA
    "error": "#D55E00",       # vermillion: an error: a broken claim, the gradient of the loss
    "text": "#222222",        # near-black: text, reference lines, operations without weights
}

# Figures are shown at DISPLAY_DPI pixels per inch (CSS pixels, as a notebook lays them out) and
# stored with twice the pixels ("retina" images: sharp on a high-density screen and a projector).
# No figure is wider than the notebook's column, and no text smaller than MIN_FONT_PT points,
# which is 14.6 CSS pixels at this resolution (tests/test_plotting.py checks both).
DISPLAY_DPI = 100
MAX_WIDTH_PX = 800
MAX_WIDTH_IN = 7.8           # the widest figsize: its tight box, 0.1 inch of padding around, stays within 800 px
MIN_FONT_PT = 10.5
SMALL = MIN_FONT_PT          # legends, tick labels, annotations
FIGURE_FORMAT = "retina"     # matplotlib_inline's format: 2x pixels, displayed at 1x size
# A figure is stored as a PNG with a palette of PNG_COLORS colours (a plot uses a few colours;
# rounding the shades of its antialiased edges to the palette changes nothing one can see), and
# as a JPEG if it shows a photograph: an image of at least PHOTO_PIXELS pixels, which a PNG
# stores at several times the size (notebook 02's photo crops have 30,000 pixels; the course's
# largest heat map, a 64 x 64 similarity map, 4,096).
PNG_COLORS = 256
PHOTO_PIXELS = 20_000
JPEG_QUALITY = 90

COURSE_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": DISPLAY_DPI,
    "savefig.dpi": 2 * DISPLAY_DPI,
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "xtick.labelsize": SMALL,
    "ytick.labelsize": SMALL,
    "legend.fontsize": SMALL,
    "legend.title_fontsize": SMALL,
    "figure.titlesize": 12,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.prop_cycle": matplotlib.cycler(color=[COLORS["trained"], COLORS["dependent"],
                                                COLORS["lora"], COLORS["adapter"],
                                                COLORS["pivot"], COLORS["frozen"]]),
    "legend.frameon": False,
    "image.cmap": "viridis",
}


def figure_problems(fig) -> list[str]:
    """What makes ``fig`` unfit for the course: text smaller than ``MIN_FONT_PT`` points, or a
    width (as the notebook shows it: the tight box around what is drawn, padded by 0.1 inch) over
    ``MAX_WIDTH_PX`` pixels at ``DISPLAY_DPI``. An empty list if it is fit."""
    check_instance(fig, "fig", matplotlib.figure.Figure)
    if not hasattr(fig.canvas, "get_renderer"):   # a closed figure: draw it off-screen
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    fig.draw(renderer)
    problems = []
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text().strip() and text.get_fontsize() < MIN_FONT_PT - 1e-9:
            problems.append(f"text {text.get_text()[:40]!r} at {text.get_fontsize():g} pt, below {MIN_FONT_PT:g} pt")
    width = (fig.get_tightbbox(renderer).width + 0.2) * DISPLAY_DPI
    if width > MAX_WIDTH_PX:
        problems.append(f"{width:.0f} pixels wide at {DISPLAY_DPI} dpi, wider than {MAX_WIDTH_PX}")
    return problems


def _figure_and_axes(ax, **subplots):
    """The figure and axes to draw on: ``ax`` if given, else a new figure (``subplots`` are
    passed to ``plt.subplots``)."""
    if ax is None:
        return plt.subplots(**subplots)
    return ax.figure, ax


def use_course_style() -> None:
    """Apply the course's matplotlib style (readable, consistent colours), and in a notebook
    store figures at twice the pixels they are shown with ("retina"): plots as compact PNGs,
    photographs as JPEGs (see :func:`figure_image`)."""
    matplotlib.rcParams.update(COURSE_STYLE)
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:   # no IPython: nothing shows figures inline
        pass
    else:
        shell = get_ipython()
        if shell is not None:
            set_matplotlib_formats(FIGURE_FORMAT)
            for mime in ("image/png", "image/jpeg"):
                shell.display_formatter.formatters[mime].for_type(
                    matplotlib.figure.Figure, lambda fig, mime=mime: _figure_as(fig, mime))
    describe_figures_in_outputs()   # every figure shown carries a text alternative (alt)


def shows_photo(fig) -> bool:
    """True if ``fig`` shows an image of at least ``PHOTO_PIXELS`` pixels (a photograph)."""
    check_instance(fig, "fig", matplotlib.figure.Figure)
    sizes = [np.shape(image.get_array())[:2] for ax in fig.axes for image in ax.get_images()
             if image.get_array() is not None]
    return any(rows * columns >= PHOTO_PIXELS for rows, columns in sizes)


def figure_image(fig) -> tuple[str, bytes, dict]:
    """``fig`` as a notebook stores it: ``(mime type, bytes, {"width", "height"})``, drawn with
    twice the pixels of the size it is shown at (``width`` x ``height``, at ``DISPLAY_DPI``).

    A plot becomes a PNG with a palette of ``PNG_COLORS`` colours, a photograph
    (:func:`shows_photo`) a JPEG of quality ``JPEG_QUALITY``: both several times smaller than
    matplotlib's own PNG, and as sharp.
    """
    import io

    from PIL import Image

    check_instance(fig, "fig", matplotlib.figure.Figure)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=2 * DISPLAY_DPI, bbox_inches="tight", pad_inches=0.1,
                facecolor=fig.get_facecolor(), edgecolor=fig.get_edgecolor())
    picture = Image.open(buffer).convert("RGB")
    stored = io.BytesIO()
    if shows_photo(fig):
        mime = "image/jpeg"
        picture.save(stored, format="JPEG", quality=JPEG_QUALITY, optimize=True)
    else:
        mime = "image/png"
        picture.quantize(PNG_COLORS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            stored, format="PNG", optimize=True)
    return mime, stored.getvalue(), {"width": picture.width // 2, "height": picture.height // 2}


def _figure_as(fig, mime: str):
    """IPython's formatter for ``mime``: the figure, base64-encoded with its display size, if
    :func:`figure_image` stores it as ``mime``; else None (another formatter stores it)."""
    import base64

    empty = not fig.axes and not fig.lines   # shows nothing, as in matplotlib_inline
    if empty or mime != ("image/jpeg" if shows_photo(fig) else "image/png"):
        return None   # (decided before drawing: each figure is drawn once)
    _, data, size = figure_image(fig)
    return base64.b64encode(data).decode("ascii"), size


def _vector3(vector, name: str) -> np.ndarray:
    try:
        array = np.asarray(vector, dtype=float)
    except (TypeError, ValueError):   # numpy's message would not say which vector
        raise TypeError(f"vector {name!r} must be 3 numbers, got {vector!r}") from None
    if array.shape != (3,):
        raise ValueError(f"vector {name!r} must have 3 entries to be drawn in 3-D, "
                         f"got shape {array.shape}")
    return array


def plane_extent(u, v, vectors) -> tuple[float, float]:
    """The range of s and t to shade the plane s u + t v over, so that every vector lying in
    the plane is drawn on it: each one's coefficients (s, t) are found and covered."""
    basis = np.column_stack([_vector3(u, "u"), _vector3(v, "v")])
    if isinstance(vectors, str) or not isinstance(vectors, Iterable):
        raise TypeError(f"vectors must be a list of 3-vectors, got {vectors!r}")
    inside = []
    for i, w in enumerate(vectors):
        w = _vector3(w, f"vectors[{i}]")
        coefficients = np.linalg.lstsq(basis, w, rcond=None)[0]
        if np.allclose(basis @ coefficients, w):
            inside.append(coefficients)
    low = min([0.0] + [c.min() for c in inside])
    high = max([1.5] + [1.1 * c.max() for c in inside])
    return low, high


def plot_vectors_and_plane(vectors: dict, plane: tuple[str, str] | None = None):
    """Draw 3-D vectors as arrows from the origin, and optionally the plane two of them span.

    ``vectors`` maps a label to a 3-vector; ``plane`` names the two vectors whose span is
    shaded. A vector lying in that plane is a linear combination of the two.
    """
    if not isinstance(vectors, dict) or not vectors:
        raise TypeError("vectors must be a non-empty dict mapping labels to 3-vectors")
    arrays = {name: _vector3(v, name) for name, v in vectors.items()}
    fig = plt.figure(figsize=(5.2, 4.4))
    ax = fig.add_subplot(projection="3d")
    if plane is not None:
        check_names(plane, "plane")
        missing = [name for name in plane if name not in arrays]
        if len(plane) != 2 or missing:
            raise ValueError(f"plane must name two of the vectors {list(arrays)}, got {plane}")
        u, v = arrays[plane[0]], arrays[plane[1]]
        low, high = plane_extent(u, v, arrays.values())
        s, t = np.meshgrid(np.linspace(low, high, 8), np.linspace(low, high, 8))
        points = s[..., None] * u + t[..., None] * v
        ax.plot_surface(points[..., 0], points[..., 1], points[..., 2],
                        color=COLORS["pivot"], alpha=0.15, linewidth=0)
    colors = [COLORS["pivot"], COLORS["pivot"], COLORS["dependent"], COLORS["error"]]
    for k, (name, array) in enumerate(arrays.items()):
        color = colors[min(k, len(colors) - 1)]
        ax.quiver(0, 0, 0, *array, color=color, linewidth=2, arrow_length_ratio=0.08)
        ax.text(*(array * 1.08), name, color=color, fontsize=11, fontweight="bold")
    limit = max(1.0, float(np.abs(np.stack(list(arrays.values()))).max()))
    ax.set(xlim=(0, limit), ylim=(0, limit), zlim=(0, limit), xlabel="x", ylabel="y", zlabel="z")
    ax.view_init(elev=22, azim=-58)
    return fig


def plot_matrix(values, pivots=None, title: str | None = None, ax=None, marked=None,
                marked_label: str = "marked entries"):
    """Heatmap of a matrix with every entry written in, pivot columns boxed in blue and
    dependent columns in orange (pass ``pivots`` as 0-based column indices).

    The grey shade of a cell grows with its entry (darker = larger), and the legend says so.
    ``marked``: (row, column) pairs counted from 1, as the notes count, drawn hatched in
    near-black and named ``marked_label`` in the legend; no colour of the boxes is reused."""
    matrix = as_float_array(values)
    fig, ax = _figure_and_axes(ax, figsize=(min(0.75 * matrix.shape[1] + 1.6, MAX_WIDTH_IN),
                                            0.6 * matrix.shape[0] + 1.4))
    ax.imshow(matrix, cmap="Greys", alpha=0.35)
    ax.grid(False)
    entries = set()   # the marked entries, counted from 0
    for k, entry in enumerate(check_sequence(marked, "marked", "(row, column) pairs") if marked is not None else []):
        pair = check_sequence(entry, f"marked[{k}]", "numbers: a (row, column) pair")
        if len(pair) != 2:
            raise ValueError(f"marked[{k}] must be a (row, column) pair, got {entry!r}")
        entries.add((check_int(pair[0], f"marked[{k}] row", minimum=1, maximum=matrix.shape[0]) - 1,
                     check_int(pair[1], f"marked[{k}] column", minimum=1, maximum=matrix.shape[1]) - 1))
    for (i, j), value in np.ndenumerate(matrix):
        text = f"{value:g}" if abs(value) < 1e4 else f"{value:.1e}"
        behind = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}
        ax.text(j, i, text, ha="center", va="center", fontsize=SMALL, color=COLORS["text"], zorder=4,
                bbox=behind if (i, j) in entries else None)
    ax.set_xticks(range(matrix.shape[1]), [column_name(j) for j in range(matrix.shape[1])])
    ax.set_yticks(range(matrix.shape[0]), [f"row {i + 1}" for i in range(matrix.shape[0])])
    ax.tick_params(length=0)
    handles = [matplotlib.patches.Patch(facecolor=plt.get_cmap("Greys")(0.6), alpha=0.35,
                                        label="grey shade: darker = larger entry")]
    if pivots is not None:
        pivots = {check_int(p, f"pivots[{i}]", minimum=0, maximum=matrix.shape[1] - 1)
                  for i, p in enumerate(check_sequence(pivots, "pivots", "column indices"))}
        for j in range(matrix.shape[1]):
            role = "pivot" if j in pivots else "dependent"
            ax.add_patch(matplotlib.patches.Rectangle(
                (j - 0.45, -0.45), 0.9, matrix.shape[0] - 0.1, fill=False,
                edgecolor=COLORS[role], linewidth=2.5))
            ax.get_xticklabels()[j].set_color(COLORS[role])
        handles += [matplotlib.patches.Patch(edgecolor=COLORS[role], fill=False, linewidth=2, label=label)
                    for role, label in [("pivot", "pivot (independent)"), ("dependent", "dependent")]]
    if marked is not None:
        for i, j in entries:
            ax.add_patch(matplotlib.patches.Rectangle(
                (j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///", edgecolor=COLORS["text"],
                linewidth=0))
        handles.append(matplotlib.patches.Patch(fill=False, hatch="///", edgecolor=COLORS["text"],
                                                linewidth=0, label=marked_label))
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=1, fontsize=SMALL)
    if title:
        ax.set_title(title)
    return fig


def plot_singular_values(series: dict, tol: float | None = None, ax=None, title=None,
                         colors: dict | None = None):
    """Singular values (largest first) of one or more matrices on a log scale.

    ``series`` maps a label to a 1-D array of singular values. Exact zeros cannot be drawn on
    a log axis, so they are shown at the bottom of the axis and said so in the legend.
    ``tol`` draws the tolerance line used for the numerical rank. ``colors`` maps some labels
    to colours, so that a figure can keep the course's colours to their meanings (the others
    take matplotlib's colour cycle).
    """
    if not isinstance(series, dict) or not series:
        raise TypeError("series must be a non-empty dict mapping labels to singular values")
    arrays = {}
    for label, values in series.items():
        values = np.asarray(values, dtype=float)
        if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"series {label!r} must be a non-empty 1-D list of finite "
                             f"singular values >= 0")
        arrays[label] = values
    if tol is not None:
        tol = check_real(tol, "tol", minimum=0, include_minimum=False)
    fig, ax = _figure_and_axes(ax)
    positive = [values[values > 0] for values in arrays.values()]
    smallest = [p.min() for p in positive if p.size] + ([tol] if tol else [])
    floor = min(smallest) / 100 if smallest else 1e-16   # an all-zero spectrum: any floor will do
    markers = "os^Dv"
    if colors is not None and (not isinstance(colors, dict) or set(colors) - set(arrays)):
        raise ValueError(f"colors must be a dict whose keys are among the labels {list(arrays)}")
    for k, (label, values) in enumerate(arrays.items()):
        original = label
        zeros = int(np.sum(values <= 0))
        shown = np.where(values > 0, values, floor)
        if zeros:
            label = f"{label} ({zeros} exact zero{'s' if zeros > 1 else ''} drawn at bottom)"
        color = (colors or {}).get(original)
        ax.semilogy(np.arange(1, len(values) + 1), shown, marker=markers[k % 5],
                    linestyle="-", label=label, **({"color": color} if color is not None else {}))
    if tol is not None:
        ax.axhline(tol, color=COLORS["text"], linestyle="--", label=f"tolerance = {tol:.0e}")
    ax.set(xlabel="index i", ylabel="singular value σᵢ (log scale)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=SMALL)
    if title:
        ax.set_title(title)
    return fig


def plot_svd_of_2x2(matrix):
    """What M = U Σ Vᵀ does to the unit circle, one factor per panel, for a 2×2 matrix M.

    Vᵀ rotates (or reflects) the circle so that the right singular vectors v₁, v₂ land on the
    axes; Σ stretches along the axes by σ₁ and σ₂, giving an ellipse; U rotates (or reflects)
    the ellipse into the output space, where its semi-axes are σ₁u₁ and σ₂u₂. Each panel draws
    the shape before its step dashed in grey and after it in near-black, with the images of
    v₁ and v₂ as arrows (named where they are new). The last panel's ellipse is M applied to the circle directly.
    """
    M = check_array(matrix, "matrix", ndim=2)
    if M.shape != (2, 2) or not np.all(np.isfinite(M)):
        raise ValueError(f"matrix must be a 2×2 matrix of finite numbers, got shape {M.shape}")
    U, sigma, Vt = np.linalg.svd(M)
    angle = np.linspace(0, 2 * np.pi, 241)
    circle = np.stack([np.cos(angle), np.sin(angle)])
    steps = [("1. Vᵀ: rotate (or reflect)", np.eye(2), Vt, ("v{k}", "e{k}")),
             ("2. Σ: stretch along the axes", Vt, np.diag(sigma) @ Vt, (None, "σ{k}e{k}")),
             ("3. U: rotate into the output space", np.diag(sigma) @ Vt, M, (None, "σ{k}u{k}"))]
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 3.6), layout="constrained")
    limit = 1.2 * max(1.0, float(sigma[0]))
    grey, black = COLORS["frozen"], COLORS["text"]
    for ax, (title, before, after, (old, new)) in zip(axes, steps):
        ax.plot(*(before @ circle), color=grey, linestyle="--", linewidth=1.2, label="before this step")
        ax.plot(*(after @ circle), color=black, linewidth=1.8, label="after it")
        for k in range(2):
            for transform, color, name in ((before, grey, old), (after, black, new)):
                tip = transform @ Vt[k]
                ax.annotate("", xy=tip, xytext=(0, 0),
                            arrowprops={"arrowstyle": "-|>", "color": color, "linewidth": 1.5})
                if name is None:   # the previous panel names the arrows it ends with
                    continue
                label = name.format(k="₁₂"[k])
                ax.text(*(tip + 0.3 * tip / np.linalg.norm(tip)), label, color=color, ha="center",
                        va="center", fontsize=SMALL)
        ax.set(xlim=(-limit, limit), ylim=(-limit, limit), aspect="equal", title=title)
        ax.axhline(0, color=grey, linewidth=0.5)
        ax.axvline(0, color=grey, linewidth=0.5)
    axes[0].legend(loc="lower left", fontsize=SMALL)
    fig.suptitle(f"M = U Σ Vᵀ on the unit circle: σ₁ = {sigma[0]:.3g}, σ₂ = {sigma[1]:.3g}")
    return fig


def plot_storage_fraction(sizes, ranks=None, ax=None):
    """Fraction of a d x d matrix's numbers that a rank-r factorisation stores, 2r/d, against r.

    Marks the break-even rank d/2 (fraction 1: no saving) for each size.
    """
    sizes = [check_int(d, f"sizes[{i}]", minimum=2)
             for i, d in enumerate(check_sequence(sizes, "sizes", "layer sizes"))]
    if not sizes:
        raise ValueError("sizes must be a non-empty list of layer sizes, got []")
    fig, ax = _figure_and_axes(ax)
    ranks = np.arange(1, max(sizes) // 2 + 1) if ranks is None else np.asarray(ranks)
    for d in sizes:
        r = ranks[ranks <= d // 2]
        line, = ax.loglog(r, 2 * r / d, label=f"d = k = {d:,}")
        ax.plot([d / 2], [1.0], marker="o", color=line.get_color())
    ax.axhline(1.0, color=COLORS["text"], linestyle="--", label="break-even: no saving")
    ax.set(xlabel="rank r (log scale)", ylabel="numbers stored / dense (log scale)")
    ax.legend(fontsize=SMALL)
    return fig


CROP_OUTLINE = "#F0E442"   # Okabe-Ito yellow, used for nothing else: where a zoomed crop comes from


def plot_image_grid(images: dict, ncols: int = 3, cmap: str = "gray", box=None, box_label: str = ""):
    """Show 2-D arrays as images in a grid, ``ncols`` to a row, each with its label as title.

    Each image gets 2.5 inches of width (its height follows the tallest image's shape), so three
    to a row fill a notebook's width (750 of its 800 pixels at the course's 100 dpi), each large
    enough to compare. ``box=(top, left, height, width)`` outlines that region (in pixels) on
    the first image, e.g. where a zoomed crop shown elsewhere comes from; ``box_label`` names it
    in the first image's legend.
    """
    if not isinstance(images, dict) or not images:
        raise TypeError("images must be a non-empty dict mapping titles to 2-D arrays")
    ncols = check_int(ncols, "ncols", minimum=1)
    check_instance(box_label, "box_label", str)
    if box is not None:
        box = [check_int(v, f"box[{i}]", minimum=0) for i, v in enumerate(check_sequence(box, "box", "numbers"))]
        if len(box) != 4 or box[2] < 1 or box[3] < 1:
            raise ValueError(f"box must be (top, left, height, width) with height and width >= 1, got {box}")
    arrays = {title: np.asarray(image, dtype=float) for title, image in images.items()}
    for title, image in arrays.items():
        if image.ndim != 2 or image.size == 0:
            raise ValueError(f"image {title!r} must be a non-empty 2-D array, got shape {image.shape}")
    nrows = -(-len(arrays) // ncols)
    aspect = max(image.shape[0] / image.shape[1] for image in arrays.values())
    fig, axes = plt.subplots(nrows, ncols, figsize=(min(2.5 * ncols, MAX_WIDTH_IN),
                                                       (min(2.5, MAX_WIDTH_IN / ncols) * aspect + 0.5) * nrows),
                             layout="constrained", squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, image) in zip(axes.flat, arrays.items()):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=1)
        ax.set_title(title, fontsize=SMALL, fontweight="normal")
    if box is not None:
        top, left, height, width = box
        first = axes.flat[0]
        first.add_patch(matplotlib.patches.Rectangle(
            (left - 0.5, top - 0.5), width, height, fill=False, linewidth=1.5,
            edgecolor=CROP_OUTLINE, label=box_label or None))
        if box_label:
            first.legend(loc="lower center", bbox_to_anchor=(0.5, -0.12), fontsize=SMALL)
    return fig


def _check_svd_factors(factors):
    """``factors`` as np.linalg.svd(M, full_matrices=False) returns them: U (d × n), the n
    singular values in decreasing order, Vᵀ (n × k)."""
    if not isinstance(factors, (tuple, list)) or len(factors) != 3:
        raise TypeError(f"factors must be the three arrays (U, sigma, Vt) that "
                        f"np.linalg.svd(M, full_matrices=False) returns, got {type(factors).__name__}")
    U = check_array(factors[0], "factors[0] (U)", ndim=2)
    sigma = check_array(factors[1], "factors[1] (sigma)", ndim=1)
    Vt = check_array(factors[2], "factors[2] (Vt)", ndim=2)
    n = len(sigma)
    if U.shape[1] != n or Vt.shape[0] != n:
        raise ValueError(f"factors do not fit together: U is {U.shape}, sigma has {n} values, Vt "
                         f"is {Vt.shape} (U needs {n} columns and Vt {n} rows); pass "
                         f"np.linalg.svd(M, full_matrices=False)")
    if np.any(sigma < 0) or np.any(np.diff(sigma) > 0):
        raise ValueError("factors[1] (sigma) must be the singular values in decreasing order, >= 0")
    return U, sigma, Vt


def draw_photo_at_rank(factors, rank: int):
    """The picture a slider redraws in notebook 02: an image at one rank, what that rank stores,
    and what it loses.

    ``factors`` is ``np.linalg.svd(photo, full_matrices=False)``, computed once (an SVD of a
    photo takes too long to repeat at every move of a slider); ``rank`` is r. Left: the rank-r
    approximation U_r Σ_r V_rᵀ (clipped to the 0..1 brightness range). Right: against the rank,
    the relative Frobenius error √(Σ_{i>r} σᵢ²) / ‖M‖_F and the numbers stored, r(d + k) / dk,
    with r marked. The title gives r, the stored count r·(d + k) against d·k, and the error.
    Returns the Figure without showing it.
    """
    U, sigma, Vt = _check_svd_factors(factors)
    d, k, n = U.shape[0], Vt.shape[1], len(sigma)
    rank = check_int(rank, "rank", minimum=1, maximum=n)
    image = np.clip((U[:, :rank] * sigma[:rank]) @ Vt[:rank], 0.0, 1.0)
    energy = sigma ** 2
    tail = np.concatenate([np.cumsum(energy[::-1])[::-1], [0.0]])   # tail[r] = Σ_{i>r} σᵢ²
    ranks = np.arange(1, n + 1)
    errors = np.sqrt(tail[1:] / tail[0])
    stored, dense = rank * (d + k), d * k
    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.6), layout="constrained",
                                      gridspec_kw={"width_ratios": [1, 1.2]})
    left.imshow(image, cmap="gray", vmin=0, vmax=1)
    left.axis("off")
    right.plot(ranks, errors, color=COLORS["error"], label="relative error ‖M − M_r‖_F / ‖M‖_F")
    right.plot(ranks, ranks * (d + k) / dense, color=COLORS["text"],
               label="numbers stored / dense, r(d + k) / dk")
    break_even = dense / (d + k)   # where the stored fraction reaches 1
    right.axhline(1.0, color=COLORS["text"], linestyle=":", linewidth=1)
    right.axvline(break_even, color=COLORS["text"], linestyle=":", linewidth=1,
                  label=f"break-even rank {break_even:.0f}: storing r(d + k) = dk")
    right.plot([rank], [errors[rank - 1]], "o", color=COLORS["error"])
    right.plot([rank], [stored / dense], "o", color=COLORS["text"])
    right.axvline(rank, color=COLORS["frozen"], linewidth=1)
    right.set(xlabel="rank r", ylabel="fraction", ylim=(0, 1.5),
              xlim=(0, max(rank, min(n, 1.1 * dense / (d + k)))))
    right.legend(fontsize=SMALL, loc="upper left")
    fig.suptitle(f"rank {rank}: stores {rank}·({d} + {k}) = {stored:,} numbers vs {d}·{k} = "
                 f"{dense:,} ({stored / dense:.0%}); relative error {errors[rank - 1]:.1%}",
                 fontsize=SMALL)
    return fig


METHOD_COLORS = {"full fine-tuning": COLORS["trained"], "adapters": COLORS["adapter"],
                 "LoRA": COLORS["lora"], "frozen encoder": COLORS["frozen"]}


def plot_grouped_bars(groups, series: dict, ylabel: str, log: bool = True, title=None, ax=None):
    """Grouped bar chart: one group per entry of ``groups``, one bar per entry of ``series``.

    ``series`` maps a label to one value per group. Labels that start with a method name
    ("full fine-tuning", "adapters", "LoRA", "frozen encoder") get that method's course colour.
    """
    groups = check_sequence(groups, "groups", "group names")
    if not isinstance(series, dict) or not series:
        raise TypeError("series must be a non-empty dict mapping labels to values")
    for label, values in series.items():
        if len(values) != len(groups):
            raise ValueError(f"series {label!r} has {len(values)} values for {len(groups)} groups")
    fig, ax = _figure_and_axes(ax, figsize=(min(max(5.0, 0.9 * len(groups) + 1.5), MAX_WIDTH_IN), 3.6))
    width = 0.8 / len(series)
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        color = _method_color(label)
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width=width, label=label, color=color)
    if log:
        ax.set_yscale("log")
    ax.set_xticks(x, groups, rotation=20 if len(groups) > 4 else 0)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=SMALL)
    if title:
        ax.set_title(title)
    return fig


def smooth(values, window: int = 20) -> np.ndarray:
    """Running mean over ``window`` steps (shorter at the start), to read a noisy loss curve.

    Its first ``window`` values are means of fewer steps, so they are noisier and, on a falling
    loss, higher than what follows (plot_train_validation draws a centred moving average instead).
    """
    values = check_array(values, "values", ndim=1)
    _check_window(window)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    starts = np.maximum(np.arange(1, values.size + 1) - window, 0)
    return (cumulative[1:] - cumulative[starts]) / (np.arange(1, values.size + 1) - starts)


def _method_color(label: str):
    """The course colour of the method a label starts with (None: matplotlib's cycle)."""
    return next((color for method, color in METHOD_COLORS.items() if label.startswith(method)), None)


def _method_style(label: str) -> str:
    """Dotted lines for LoRA on every linear layer, solid for the others."""
    return ":" if "all linear" in label else "-"


def plot_attention(weights, tokens, title=None, ax=None):
    """A heat map of attention weights: row i shows how much token i reads from each token.

    ``weights`` is a (T, T) array whose rows sum to 1, ``tokens`` the T words.
    """
    weights = check_array(weights, "weights", ndim=2)
    tokens = check_sequence(tokens, "tokens", "words")
    if weights.shape[0] != weights.shape[1] or weights.shape[0] != len(tokens):
        raise ValueError(f"weights must be a square array with one row per token; got shape "
                         f"{weights.shape} for {len(tokens)} tokens")
    if not np.all(np.isfinite(weights)):
        raise ValueError("attention weights must be finite")
    size = 0.32 * len(tokens) + 1.8
    fig, ax = _figure_and_axes(ax, figsize=(min(size + 0.8, MAX_WIDTH_IN), min(size, MAX_WIDTH_IN - 0.8)))
    image = ax.imshow(weights, cmap="Greys", vmin=0, vmax=1)
    ax.grid(False)
    ax.set_xticks(range(len(tokens)), tokens, rotation=60, ha="right", fontsize=SMALL)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=SMALL)
    ax.set(xlabel="reads from (key)", ylabel="token (query)")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    if title:
        ax.set_title(title)
    return fig


LINE_STYLES = ("-", "--", "-.", ":", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 3)))
MARKERS = ("o", "s", "^", "D", "v", "P")


@dataclass(frozen=True)
class _SeriesStyle:
    """How one series is drawn: colour, marker and line style (see :func:`_series_styles`)."""

    color: object      # a colour matplotlib reads, or None for the style's colour cycle
    marker: str
    linestyle: object  # a matplotlib line style: "-", "--", or an (offset, dashes) pair


def _shade(base, i: int, n: int):
    """The i-th of n shades of ``base``, darkest first, with a strong step between them, from
    0.45 darker to 0.45 of the way to white (lighter would fade into a white background).
    ``base`` itself is among them when there are two (the first) or an odd number (the middle)."""
    low = -0.45 if n > 2 else 0.0
    mix = low + (0.45 - low) * i / (n - 1) if n > 1 else 0.0
    if abs(mix) < 1e-9:
        return base
    rgb = np.array(matplotlib.colors.to_rgb(base))
    return tuple(rgb * (1 + mix) if mix < 0 else rgb + (1 - rgb) * mix)


def _series_styles(labels) -> dict:
    """A :class:`_SeriesStyle` per label, so that no two series look alike.

    Each label gets its method's colour (:func:`_method_color`). Labels that share a colour
    (three learning rates of one method, "LoRA" and "LoRA, all linear") are told apart three
    ways at once: shades of that colour from dark to light, a different marker each, and a
    different line style each ("all linear" takes the dotted line when it is free, as in every
    figure of the course). A label alone in its colour keeps that colour and round markers,
    solid (dotted for "all linear"), and so does a label without a method colour, which
    matplotlib's colour cycle tells apart.
    """
    labels = list(labels)
    groups: dict = {}
    for label in labels:
        groups.setdefault(_method_color(label), []).append(label)
    styles = {}
    for base, members in groups.items():
        if base is None:   # no method colour: matplotlib's colour cycle tells them apart
            styles.update({label: _SeriesStyle(None, MARKERS[0], _method_style(label)) for label in members})
            continue
        free = list(LINE_STYLES)
        chosen = {}
        for label in sorted(members, key=lambda label: _method_style(label) == "-"):
            # labels that want the dotted line ("all linear") pick first, the others in order
            wanted = _method_style(label)
            if not free:   # more series than line styles: start the list again
                free = list(LINE_STYLES)
            chosen[label] = wanted if wanted in free else free[0]
            free.remove(chosen[label])
        for i, label in enumerate(members):
            styles[label] = _SeriesStyle(_shade(base, i, len(members)), MARKERS[i % len(MARKERS)],
                                         chosen[label])
    return {label: styles[label] for label in labels}


def _check_window(window) -> int:
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be an integer >= 1, got {window!r}")
    return window


def _moving_average(values, window: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Centred moving average: ``(steps, means)``, each mean over ``window`` consecutive
    values and placed at the middle of its window (steps count from 1).

    Unlike :func:`smooth` nothing is returned until a whole window is available, so every
    point is a mean of the same number of values: no start-up artefact, and no lag behind the
    raw curve. ``window`` longer than the values is cut to their length (one mean of them all).
    """
    values = check_array(values, "values", ndim=1)
    window = min(_check_window(window), values.size)
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    means = (cumulative[window:] - cumulative[:-window]) / window
    steps = np.arange(means.size) + (window + 1) / 2   # the middle of steps i+1 .. i+window
    return steps, means


def plot_train_validation(curves: dict, window: int = 20, title=None, ax=None):
    """Training loss and validation loss against step, one colour, marker and line style per curve.

    ``curves`` maps a label to ``(training_losses, [(step, validation_loss), ...])``. For each
    curve: the raw training loss of every step (thin, faint); a centred moving average of it
    (thick): the mean of ``window`` consecutive steps, drawn at the middle of those steps and
    only where a whole window is available, so that every point averages as many steps and
    there is no jump where the window fills up; and the validation loss (markers joined by a
    thin line). Curves of one method share its colour and are told apart by shade, marker and
    line style. A validation loss that rises while the training loss keeps falling is
    over-fitting.
    """
    if not isinstance(curves, dict) or not curves:
        raise TypeError("curves must be a non-empty dict mapping labels to (train, validation)")
    window = _check_window(window)
    fig, ax = _figure_and_axes(ax)
    styles = _series_styles(curves)
    handles = []
    for label, (train, validation) in curves.items():
        if not validation:
            raise ValueError(f"{label!r} has no validation losses; train with validate_every")
        style = styles[label]
        train = check_array(train, f"the training losses of {label!r}", ndim=1)
        steps, means = _moving_average(train, window)
        line, = ax.plot(steps, means, color=style.color, linestyle=style.linestyle,
                        linewidth=2.2, label=label, gid=f"train:{label}")
        color = line.get_color()
        ax.plot(np.arange(1, train.size + 1), train, "-", color=color, linewidth=0.6, alpha=0.25,
                zorder=line.get_zorder() - 0.5, gid=f"raw:{label}")
        val_steps, losses = zip(*validation)
        ax.plot(val_steps, losses, color=color, linestyle=style.linestyle, linewidth=0.9,
                marker=style.marker, markersize=6, markeredgecolor="white", markeredgewidth=0.6,
                zorder=line.get_zorder() + 0.5, gid=f"validation:{label}")
        handles.append(matplotlib.lines.Line2D([], [], color=color, linestyle=style.linestyle,
                                               linewidth=2.2, marker=style.marker, markersize=6,
                                               markeredgecolor="white", label=label))
    grey = COLORS["text"]
    used = sorted({min(window, len(train)) for train, _ in curves.values()})   # runs shorter than a window
    used = f"{used[0]}" if len(used) == 1 else f"{used[0]} to {used[-1]}"
    handles += [matplotlib.lines.Line2D([], [], color=grey, linewidth=0.6, alpha=0.4,
                                        label="training, every step"),
                matplotlib.lines.Line2D([], [], color=grey, linewidth=2.2,
                                        label=f"training, mean of {used} steps"),
                matplotlib.lines.Line2D([], [], color=grey, linewidth=0.9, marker="o",
                                        markersize=6, markeredgecolor="white", label="validation")]
    ax.set(xlabel="training step", ylabel="loss (log scale)", yscale="log")
    ax.legend(handles=handles, fontsize=SMALL, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2, handlelength=3.2)   # below the plot: the figure grows taller, not wider
    if title:
        ax.set_title(title)
    return fig


def plot_learning_rate_sweep(points: dict, chosen: dict | None = None, ylabel="validation score",
                             title=None, ax=None):
    """Score against learning rate (log scale), one line per method; the chosen rate of each
    method is ringed. ``points`` maps a label to ``[(lr, score), ...]``.

    Series that share a method colour ("LoRA" and "LoRA, all linear") get their own shade,
    marker and line style. Each ring has the shape of its series'
    marker, and where several series choose the same point their rings get clearly different
    sizes, so that every one of them shows.
    """
    if not isinstance(points, dict) or not points:
        raise TypeError("points must be a non-empty dict mapping labels to (lr, score) pairs")
    if chosen is not None:
        check_instance(chosen, "chosen", dict)
    fig, ax = _figure_and_axes(ax)
    styles = _series_styles(points)
    tried = set()
    rings = {}   # a chosen point -> the (label, colour) of the series that chose it
    for label, pairs in points.items():
        pairs = sorted(pairs)
        if not pairs or any(lr <= 0 for lr, _ in pairs):
            raise ValueError(f"{label!r} needs (learning rate > 0, score) pairs")
        rates, scores = zip(*pairs)
        tried.update(rates)
        style = styles[label]
        line, = ax.plot(rates, scores, color=style.color, marker=style.marker,
                        linestyle=style.linestyle, linewidth=2, markersize=6.5, label=label,
                        gid=f"series:{label}")
        if chosen and label in chosen:
            if chosen[label] not in rates:
                raise ValueError(f"chosen[{label!r}] = {chosen[label]!r} is not one of the learning "
                                 f"rates tried for {label!r}: {list(rates)}")
            point = (chosen[label], dict(pairs)[chosen[label]])
            rings.setdefault(point, []).append((label, line.get_color()))
    for (rate, score), choosers in rings.items():
        for k, (label, color) in enumerate(choosers):
            # one ring in the series' own marker shape; coinciding rings 6 points apart in size
            ax.plot([rate], [score], linestyle="none", marker=styles[label].marker,
                    markersize=13 + 6 * k, markerfacecolor="none", markeredgecolor=color,
                    markeredgewidth=1.6, gid=f"chosen:{label}")
    ax.set_xscale("log")
    ax.set_xticks(sorted(tried), [f"{lr:g}" for lr in sorted(tried)])
    ax.minorticks_off()
    ax.set(xlabel="learning rate (log scale)", ylabel=ylabel)
    ax.legend(fontsize=SMALL, title="ringed: chosen" if chosen else None, title_fontsize=SMALL,
              handlelength=3.2)
    if title:
        ax.set_title(title)
    return fig


def plot_similarity_map(phi, title=None, ax=None):
    """A heat map of the subspace similarity phi(i, j) (rows i, columns j, both from 1), on a
    fixed 0-1 scale so that maps can be compared (see :mod:`lora_teach.subspaces`)."""
    phi = check_array(phi, "phi", ndim=2)
    if not np.all(np.isfinite(phi)) or phi.min() < -1e-9 or phi.max() > 1 + 1e-9:
        raise ValueError("phi must hold finite values between 0 and 1")
    fig, ax = _figure_and_axes(ax)
    rows, columns = phi.shape
    image = ax.imshow(phi, cmap="viridis", vmin=0, vmax=1, aspect="auto", interpolation="nearest",
                      extent=(0.5, columns + 0.5, rows + 0.5, 0.5))
    ax.grid(False)
    ax.set(xlabel="j", ylabel="i")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="φ(i, j)")
    if title:
        ax.set_title(title, fontsize=SMALL)
    return fig


# --- Notebook 07: the similarity map at chosen ranks (for interactive.explore) ----------------

def plot_similarity_ranks(maps: dict, i: int, j: int, title=None):
    """phi(i', j') for i' <= i and j' <= j: one heat map per entry of ``maps`` (a label ->
    a full phi map from :func:`lora_teach.subspaces.subspace_similarity`), side by side on the
    same 0-1 scale, each titled with its phi(i, j).

    Why: notebook 07 compares the top directions of two learned A (r = 8 and r = 64), trained
    and at initialisation. Moved with sliders (:func:`lora_teach.interactive.explore`), i and
    j zoom on the top directions, where the paper looks, and read phi at any pair of ranks in
    both states at once. Each call makes a new figure of one fixed size (the picture does not
    jump as the sliders move), quick enough to redraw at every move.
    """
    if not isinstance(maps, dict) or not maps:
        raise TypeError(f"maps must be a non-empty dict of label -> phi map, got {maps!r:.80}")
    arrays = {}
    for label, phi in maps.items():
        phi = check_array(phi, f"maps[{label!r}]", ndim=2)
        if not np.all(np.isfinite(phi)) or phi.min() < -1e-9 or phi.max() > 1 + 1e-9:
            raise ValueError(f"maps[{label!r}] must hold finite values between 0 and 1")
        arrays[str(label)] = phi
    i = check_int(i, "i", minimum=1, maximum=min(phi.shape[0] for phi in arrays.values()))
    j = check_int(j, "j", minimum=1, maximum=min(phi.shape[1] for phi in arrays.values()))
    fig, axes = plt.subplots(1, len(arrays), figsize=(min(4.2 * len(arrays) + 0.8, MAX_WIDTH_IN), 3.4), squeeze=False)
    fig.subplots_adjust(left=0.07, right=0.9, bottom=0.15, top=0.8, wspace=0.25)
    # one colour scale for the panels, from 0 to the largest φ shown: random subspaces overlap
    # little, so a 0-1 scale would paint both maps the same dark colour
    top = max(max(float(phi[:i, :j].max()) for phi in arrays.values()), 1e-3)
    for ax, (label, phi) in zip(axes[0], arrays.items()):
        image = ax.imshow(phi[:i, :j], cmap="viridis", vmin=0, vmax=top, aspect="auto",
                          interpolation="nearest", extent=(0.5, j + 0.5, i + 0.5, 0.5))
        ax.grid(False)
        ax.set(xlabel="j", ylabel="i")
        ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(f"{label}: φ({i}, {j}) = {phi[i - 1, j - 1]:.2f}", fontsize=SMALL)
    fig.colorbar(image, cax=fig.add_axes((0.92, 0.15, 0.015, 0.65)), label="φ(i, j)")
    if title:
        fig.suptitle(title, fontsize=SMALL)
    return fig


def plot_scores_with_intervals(runs: dict, groups, ylabel="test score", title=None, ax=None):
    """Mean test score per method (bars), its 95% interval over seeds and test sentences (error
    bar, from :mod:`lora_teach.comparison`) and every seed's own score (dots). ``runs`` maps
    ``(label, group)`` to the run records of its seeds, or to an array of their per-sentence
    parts (seeds, sentences, 2) for what is not a run record; ``groups`` orders the groups."""
    if not isinstance(runs, dict) or not runs:
        raise TypeError(f"runs must be a non-empty dict of (label, group) -> run records, got {runs!r}")
    groups = check_sequence(groups, "groups", "group names")
    if not groups:
        raise ValueError("groups is empty: give the groups (tasks) to draw")
    labels = list(dict.fromkeys(label for label, _ in runs))
    fig, ax = _figure_and_axes(ax, figsize=(min(max(5.0, 1.6 * len(groups) + 2.5), MAX_WIDTH_IN), 3.6))
    one_group = len(groups) == 1   # then the methods themselves go along the x axis
    width = 0.7 if one_group else 0.8 / len(labels)
    for i, label in enumerate(labels):
        x = np.array([i]) if one_group else np.arange(len(groups)) + (i - (len(labels) - 1) / 2) * width
        drawn = [(xi, group) for xi, group in zip(x, groups) if (label, group) in runs]
        for xi, group in drawn:
            interval = score_interval(runs[label, group])
            parts = (runs[label, group] if isinstance(runs[label, group], np.ndarray)
                     else runs_by_seed(runs[label, group])[1])
            seeds = parts[..., 0].sum(axis=1) / parts[..., 1].sum(axis=1)
            ax.bar(xi, interval.estimate, width=width, color=_method_color(label),
                   alpha=0.55 if "all linear" in label else 0.85, label=label if group == drawn[0][1] else None,
                   yerr=[[interval.estimate - interval.low], [interval.high - interval.estimate]],
                   capsize=3, ecolor=COLORS["text"])
            # each seed, beside the error bar so that both stay visible
            ax.plot([xi + 0.18 * width] * len(seeds), seeds, "o", color=COLORS["text"],
                    markersize=3.5, markerfacecolor="white", zorder=3)
    if one_group:
        ax.set_xticks(np.arange(len(labels)), [label.replace(", ", ",\n") for label in labels])
    else:
        ax.set_xticks(np.arange(len(groups)), groups)
        low, high = ax.get_ylim()
        ax.set_ylim(low, high + 0.15 * (high - low))   # room for the legend above the bars
        ax.legend(fontsize=SMALL, loc="upper center", ncol=min(len(labels), 4))
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return fig


# ---------------------------------------------------------------------------
# The LoRA update at a chosen r and alpha (notebook 05's interactive figure)
# ---------------------------------------------------------------------------

def _factor(value, name: str) -> np.ndarray:
    """A factor B or A as a float array: a tensor (even one that requires grad) or an array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().double().numpy()
    return check_array(value, name, ndim=2)


def draw_lora_update(B, A, r: int, alpha: float, alpha_range=(1.0, 64.0)):
    """The LoRA update ΔW = (α/r)·B_r·A_r at rank ``r`` and scale ``alpha``: its singular values,
    its size ‖ΔW‖_F, and the number of numbers it trains, r·(d + k).

    Why: the figure behind notebook 05's sliders for r and α, to see what α/r does to the
    update's size and what r does to its spectrum. ``B`` (d × R) and ``A`` (R × k) are the
    factors at the largest rank R; rank r uses the first r columns of B and rows of A, so that
    raising r adds directions instead of drawing new factors. Left: the r singular values of ΔW
    that can be non-zero (the other min(d, k) − r are exactly zero), log scale. Right:
    ‖ΔW‖_F against r = 1 … R at this α, the chosen r ringed. Both axes' limits hold every
    α in ``alpha_range`` and every r (all but the smallest 1% of singular values), so that
    moving a slider moves the points, not the axes.
    Returns the figure (not shown).
    """
    B, A = _factor(B, "B"), _factor(A, "A")
    if B.shape[1] != A.shape[0]:
        raise ValueError(f"B is d × R and A is R × k with the same R; got B {B.shape} and A {A.shape}")
    if not (np.all(np.isfinite(B)) and np.all(np.isfinite(A))):
        raise ValueError("B and A must hold finite numbers (no NaN or infinity)")
    ranks = B.shape[1]
    r = check_int(r, "r", minimum=1, maximum=ranks)
    alpha = check_real(alpha, "alpha", minimum=0, include_minimum=False)
    if not isinstance(alpha_range, (tuple, list)) or len(alpha_range) != 2:
        raise TypeError(f"alpha_range must be a pair (lowest alpha, highest alpha), got {alpha_range!r}")
    low = check_real(alpha_range[0], "alpha_range[0]", minimum=0, include_minimum=False)
    high = check_real(alpha_range[1], "alpha_range[1]", minimum=low)
    d, k = B.shape[0], A.shape[1]
    # ‖B_r A_r‖_F² = Σ_{i,j ≤ r} (BᵀB)_ij (AAᵀ)_ij: every rank's norm from one r × r sum each
    gram = np.cumsum(np.cumsum((B.T @ B) * (A @ A.T), axis=0), axis=1)
    sizes = np.sqrt(np.clip(np.diag(gram), 0, None)) / np.arange(1, ranks + 1)   # ‖B_r A_r‖_F / r
    spectra = [np.linalg.svd(B[:, :i] @ A[:i], compute_uv=False)[:i] / i for i in range(1, ranks + 1)]
    positive = np.concatenate([s[s > 0] for s in spectra])
    if positive.size == 0:
        raise ValueError("B A is zero at every rank (B or A is all zeros): there is no update to draw")
    sigma = alpha * spectra[r - 1]
    norm = alpha * sizes[r - 1]

    fig, (left, right) = plt.subplots(1, 2, figsize=(MAX_WIDTH_IN, 3.8), layout="constrained")
    drawn = sigma > 0
    left.bar(np.arange(1, r + 1)[drawn], sigma[drawn], width=0.8, color=COLORS["lora"],
             label=f"the {r} singular value{'s' * (r > 1)} that can be non-zero")
    left.set(yscale="log", xlim=(0.3, min(d, k) + 0.7),
             ylim=(low * np.percentile(positive, 1) / 2, high * positive.max() * 2),
             xlabel="index i", ylabel="σᵢ of (α/r)·B·A (log scale)",
             title=f"Spectrum: σ{r + 1}…σ{min(d, k)} are exactly 0" if r < min(d, k) else "Spectrum")
    left.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    left.legend(fontsize=SMALL, loc="upper right")
    every_r = np.arange(1, ranks + 1)
    right.plot(every_r, alpha * sizes, color=COLORS["lora"], label=f"at α = {alpha:g}, every r")
    right.plot([r], [norm], "o", markersize=9, markerfacecolor="none", markeredgecolor=COLORS["text"],
               markeredgewidth=1.5, label=f"r = {r}: ‖ΔW‖_F = {norm:.3g}")
    right.set(xscale="log", yscale="log", xlabel="rank r (log scale)", ylabel="‖(α/r)·B·A‖_F (log scale)",
              ylim=(low * sizes.min() / 2, high * sizes.max() * 2), title="Size of the update")
    right.set_xticks([t for t in (1, 2, 4, 8, 16, 32, 64, 128, 256) if t <= ranks])
    right.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%d"))
    right.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    right.legend(fontsize=SMALL, loc="upper right")
    trained = r * (d + k)
    fig.suptitle(f"r = {r}, α = {alpha:g}, α/r = {alpha / r:.3g}: ΔW trains r·(d + k) = {trained:,} numbers "
                 f"({trained / (d * k):.1%} of the {d} × {k} matrix's {d * k:,})", fontsize=11)
    return fig
