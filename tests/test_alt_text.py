"""Figures' text alternatives: written from the figure's own words, stored with each output."""

import matplotlib.pyplot as plt
import pytest
from IPython.core.interactiveshell import InteractiveShell
from matplotlib.figure import Figure

from lora_teach import alt_text


@pytest.fixture
def figure():
    fig, (left, right) = plt.subplots(1, 2)
    fig.suptitle("Loss per step")
    left.plot([1, 2], [3, 1], label="LoRA")
    left.plot([1, 2], [2, 1], label="full $W$")
    left.set(title="train", xlabel="step", ylabel="loss")
    left.legend()
    right.plot([1, 2], [1, 2])
    right.set_title("validation\nset")
    yield fig
    plt.close(fig)


def test_the_description_reads_titles_labels_and_legend(figure):
    assert alt_text.describe_figure(figure) == (
        "Figure: Loss per step. 2 panels: train (x: step; y: loss; legend: LoRA, full W); validation set.")


def test_an_untitled_single_panel_figure_still_says_what_it_has():
    fig, ax = plt.subplots()
    ax.bar([0, 1], [1, 2])
    ax.set_ylabel("count")
    assert alt_text.describe_figure(fig) == "Figure. Panel: a panel (y: count)."
    plt.close(fig)


def test_empty_panels_are_left_out():
    fig, axes = plt.subplots(1, 2)
    axes[0].plot([0, 1])
    axes[0].set_title("drawn")
    axes[1].axis("off")
    assert alt_text.describe_figure(fig) == "Figure. Panel: drawn."
    plt.close(fig)


def test_only_a_figure_is_described():
    with pytest.raises(TypeError, match="figure"):
        alt_text.describe_figure("a picture")


def test_outside_ipython_nothing_is_wrapped():
    InteractiveShell.clear_instance()
    assert alt_text.describe_figures_in_outputs() is False


def test_every_figure_shown_carries_its_description(figure):
    shell = InteractiveShell.instance()
    try:
        formatter = shell.display_formatter.formatters["image/png"]
        formatter.for_type(Figure, lambda fig: (b"png bytes", {"width": 400}))
        assert alt_text.describe_figures_in_outputs() is True
        assert alt_text.describe_figures_in_outputs() is True   # a second call wraps nothing twice
        data, metadata = shell.display_formatter.format(figure)
        assert metadata["image/png"] == {"width": 400, "alt": alt_text.describe_figure(figure)}
    finally:
        InteractiveShell.clear_instance()
