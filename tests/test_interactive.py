"""lora_teach.interactive: a figure redrawn from sliders, driven here from code."""

import ipywidgets
import matplotlib.pyplot as plt
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.pylabtools import select_figure_formats
from IPython.utils.capture import capture_output

from lora_teach import interactive


def draw_line(rank, scale=1.0):
    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, rank], [0, scale])
    axes.set_title(f"rank {rank}, scale {scale:g}")
    return figure


def title(figure):
    return figure.axes[0].get_title()


def test_the_figure_is_drawn_at_the_defaults():
    explorer = interactive.explore(draw_line, rank=(1, 10, 4), scale=(0.5, 2.0, 1.0))
    assert explorer.values == {"rank": 4, "scale": 1.0}
    assert title(explorer.figure) == "rank 4, scale 1"
    assert isinstance(explorer.controls["rank"], ipywidgets.IntSlider)
    assert isinstance(explorer.controls["scale"], ipywidgets.FloatSlider)


def test_moving_a_slider_draws_the_figure_again():
    explorer = interactive.Explorer(draw_line, rank=(1, 10, 4), scale=(0.5, 2.0, 1.0, 0.25))
    explorer.controls["rank"].value = 7
    assert explorer.values == {"rank": 7, "scale": 1.0}
    assert title(explorer.figure) == "rank 7, scale 1"
    explorer.controls["scale"].value = 1.5
    assert title(explorer.figure) == "rank 7, scale 1.5"
    assert explorer.controls["scale"].step == 0.25


def test_a_widget_given_is_used_as_it_is_and_named():
    choice = ipywidgets.SelectionSlider(options=[1, 2, 4, 8], value=2)
    explorer = interactive.Explorer(draw_line, rank=choice)
    assert explorer.controls["rank"] is choice and choice.description == "rank"
    choice.value = 8
    assert title(explorer.figure) == "rank 8, scale 1"


def test_in_a_notebook_it_shows_the_figure_then_one_line_naming_the_sliders():
    shell = InteractiveShell.instance()
    select_figure_formats(shell, {"png"})   # what the notebook's inline backend does
    explorer = interactive.Explorer(draw_line, rank=(1, 10, 4))
    with capture_output() as shown:
        explorer._ipython_display_()
    figure_output, slider_output = shown.outputs
    assert "image/png" in figure_output.data
    assert slider_output.data["text/plain"].startswith("(Sliders for rank:")
    explorer.controls["rank"].value = 9     # the display handle is updated, not appended to
    assert title(explorer.figure) == "rank 9, scale 1"


def test_drawn_figures_are_closed_so_the_cell_does_not_show_them_twice():
    before = len(plt.get_fignums())
    explorer = interactive.Explorer(draw_line, rank=(1, 10, 4))
    explorer.controls["rank"].value = 5
    assert len(plt.get_fignums()) == before


@pytest.mark.parametrize("setting, error, words", [
    ((1, 10), TypeError, "rank: give (low, high, default)"),
    ([1, 10, 4], TypeError, "rank: give (low, high, default)"),
    ((1, "ten", 4), TypeError, "rank: the slider's low, high, default and step must be numbers"),
    ((1, 10, 11), ValueError, "rank: need low <= default <= high"),
    ((3, 3, 3), ValueError, "rank: need low <= default <= high and low < high"),
])
def test_a_bad_slider_is_refused_with_its_name(setting, error, words):
    with pytest.raises(error, match=r"^" + words.replace("(", r"\(").replace(")", r"\)")):
        interactive.Explorer(draw_line, rank=setting)


def test_draw_must_be_a_function_returning_a_figure():
    with pytest.raises(TypeError, match="draw must be a function"):
        interactive.Explorer("not a function", rank=(1, 10, 4))
    with pytest.raises(TypeError, match="draw must return a matplotlib Figure; it returned int"):
        interactive.Explorer(lambda rank: 3, rank=(1, 10, 4))
    with pytest.raises(ValueError, match="controls: give at least one slider"):
        interactive.Explorer(draw_line)
