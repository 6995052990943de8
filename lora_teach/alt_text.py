"""Text alternatives for figures: what a figure shows, read from the figure itself.

A screen reader cannot see a plot. :func:`describe_figure` writes a sentence from the figure's
own words (its title, each panel's title, axis labels and legend entries), and
:func:`describe_figures_in_outputs` stores that sentence with every figure a notebook shows, as
``alt`` in the output's metadata. The course site and slides put it on the image.
"""

from __future__ import annotations

from lora_teach.checks import check_instance


def _clean(text: str) -> str:
    """One line of plain text: no line breaks, no TeX dollar signs, single spaces."""
    return " ".join(text.replace("$", "").replace("\\", "").split())


def _describe_axes(ax) -> str:
    """``title (x: label; y: label; legend: a, b)`` for one panel, leaving out what is empty."""
    parts = []
    for axis_name, label in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())):
        if label.strip():
            parts.append(f"{axis_name}: {_clean(label)}")
    legend = ax.get_legend()
    if legend is not None:
        entries = [_clean(text.get_text()) for text in legend.get_texts() if text.get_text().strip()]
        if entries:
            parts.append("legend: " + ", ".join(entries))
    title = _clean(ax.get_title()) or "a panel"
    return f"{title} ({'; '.join(parts)})" if parts else title


def describe_figure(figure) -> str:
    """A one-paragraph text alternative for a matplotlib ``figure``.

    It names the figure's title and, for each panel with something to say, the panel's title,
    axis labels and legend entries, e.g. ``"Figure: Loss per step. Panel: train (x: step; y:
    loss; legend: LoRA, full)."``
    """
    from matplotlib.figure import Figure

    check_instance(figure, "figure", Figure)
    title = _clean(figure.get_suptitle())
    panels = [_describe_axes(ax) for ax in figure.axes
              if ax.get_visible() and (ax.has_data() or ax.get_title().strip())]
    text = f"Figure: {title}." if title else "Figure."
    if panels:
        text += (" Panel: " if len(panels) == 1 else f" {len(panels)} panels: ") + "; ".join(panels) + "."
    return text


def describe_figures_in_outputs() -> bool:
    """Store :func:`describe_figure`'s text as ``alt`` with every figure shown from now on.

    Wraps the PNG and JPEG formatters IPython uses for figures (so call it after choosing the
    figure format). Returns False, doing nothing, outside IPython or when no formatter draws
    figures.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    from matplotlib.figure import Figure

    wrapped = False
    for mime in ("image/png", "image/jpeg"):   # plots and photographs (plotting.figure_image)
        formatter = shell.display_formatter.formatters[mime]
        try:
            draw = formatter.lookup_by_type(Figure)
        except KeyError:
            continue
        wrapped = True
        if not getattr(draw, "adds_alt_text", False):
            formatter.for_type(Figure, _with_alt(draw))
    return wrapped


def _with_alt(draw):
    """A figure formatter that does what ``draw`` does and adds ``alt`` to the metadata."""
    def draw_with_alt(figure):
        drawn = draw(figure)
        if drawn is None:
            return None
        data, metadata = drawn if isinstance(drawn, tuple) else (drawn, {})
        return data, {**(metadata or {}), "alt": describe_figure(figure)}

    draw_with_alt.adds_alt_text = True
    return draw_with_alt
