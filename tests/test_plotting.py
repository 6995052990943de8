"""Tests for lora_teach.plotting: figures are drawn with the right content; bad input refused."""

from types import SimpleNamespace

import matplotlib
import numpy as np
import pytest
from helpers import NOTES_W

from lora_teach import plotting

SPREAD = {("LoRA", "ner"): SimpleNamespace(mean=0.5, std=0.1, values=(0.4, 0.6))}


def test_course_style_sets_shared_rcparams():
    plotting.use_course_style()
    assert matplotlib.rcParams["figure.dpi"] == plotting.COURSE_STYLE["figure.dpi"]
    assert matplotlib.rcParams["axes.spines.top"] is False


def test_plot_matrix_writes_every_entry_and_marks_pivots():
    fig = plotting.plot_matrix(NOTES_W, pivots=[0, 1, 2], title="W")
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 20 and texts[0] == "1" and texts[-1] == "36"
    colors = [label.get_color() for label in ax.get_xticklabels()]
    assert colors[:3] == [plotting.COLORS["pivot"]] * 3
    assert colors[3:] == [plotting.COLORS["dependent"]] * 2
    matplotlib.pyplot.close(fig)


def test_plot_singular_values_draws_zeros_and_tolerance():
    fig = plotting.plot_singular_values({"W": [10.0, 1.0, 0.0]}, tol=1e-3)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("1 exact zero" in label for label in labels)
    assert any("tolerance" in label for label in labels)
    matplotlib.pyplot.close(fig)


def test_plot_vectors_and_plane_checks_its_input():
    fig = plotting.plot_vectors_and_plane({"a": [1, 0, 1], "b": [0, 1, 1]}, plane=("a", "b"))
    assert len(fig.axes) == 1
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="3 entries"):
        plotting.plot_vectors_and_plane({"a": [1, 0]})
    with pytest.raises(ValueError, match="plane must name"):
        plotting.plot_vectors_and_plane({"a": [1, 0, 1]}, plane=("a", "z"))
    with pytest.raises(TypeError, match="non-empty dict"):
        plotting.plot_singular_values([])
    with pytest.raises(ValueError, match="ragged"):
        plotting.plot_matrix([[1, 2], [3]])
    matplotlib.pyplot.close("all")


def test_the_plane_reaches_every_vector_that_lies_in_it():
    # regression: the plane stopped at t = 1.5, so c = a + 2b stuck out of it
    fig = plotting.plot_vectors_and_plane({"a": [1, 0, 1], "b": [0, 1, 1], "c": [1, 2, 3]},
                                          plane=("a", "b"))
    low, high = plotting.plane_extent([1, 0, 1], [0, 1, 1], [[1, 2, 3], [0, 0, 1]])
    assert low == 0 and high >= 2   # c = 1 a + 2 b is covered; d = (0, 0, 1) is not in the plane
    assert plotting.plane_extent([1, 0, 1], [0, 1, 1], [[-1, 0, -1]])[0] == pytest.approx(-1)
    assert [t.get_text() for t in fig.axes[0].texts] == ["a", "b", "c"]
    matplotlib.pyplot.close(fig)


def test_plot_storage_fraction_marks_break_even():
    fig = plotting.plot_storage_fraction([8, 16])
    ax = fig.axes[0]
    first_curve = ax.get_lines()[0]
    assert np.allclose(first_curve.get_ydata(), 2 * first_curve.get_xdata() / 8)
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="layer sizes"):
        plotting.plot_storage_fraction([])


def test_plot_image_grid_titles_every_image():
    fig = plotting.plot_image_grid({"a": np.zeros((4, 4)), "b": np.ones((4, 4))}, ncols=2)
    assert [ax.get_title() for ax in fig.axes] == ["a", "b"]
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_image_grid({"a": np.zeros(4)})


def test_plot_grouped_bars_uses_method_colours_and_checks_lengths():
    fig = plotting.plot_grouped_bars(["x", "y"], {"LoRA r=8": [1, 2], "adapters": [3, 4]}, "n")
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert matplotlib.colors.to_hex(ax.patches[0].get_facecolor()) == plotting.COLORS["lora"].lower()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="has 1 values for 2 groups"):
        plotting.plot_grouped_bars(["x", "y"], {"LoRA": [1]}, "n")


def test_smooth_is_a_running_mean():
    assert np.allclose(plotting.smooth([1, 3, 5, 7], window=2), [1, 2, 4, 6])
    with pytest.raises(ValueError, match="window"):
        plotting.smooth([1, 2], window=0)


def test_plot_singular_values_draws_an_all_zero_spectrum():
    # regression: an all-zero spectrum crashed with "min() arg is an empty sequence"
    fig = plotting.plot_singular_values({"zero matrix": [0.0, 0.0, 0.0]})
    assert "3 exact zeros drawn at bottom" in fig.axes[0].get_legend().get_texts()[0].get_text()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="finite singular values"):
        plotting.plot_singular_values({"bad": [1.0, float("nan")]})
    with pytest.raises(ValueError, match="tol must be > 0"):
        plotting.plot_singular_values({"ok": [1.0]}, tol=0)


def test_similarity_map_draws_phi_on_a_fixed_scale():
    phi = np.linspace(0, 1, 24).reshape(3, 8)
    fig = plotting.plot_similarity_map(phi, title="phi")
    ax = fig.axes[0]
    image = ax.images[0]
    assert image.get_clim() == (0, 1) and np.array_equal(image.get_array(), phi)
    assert ax.get_title() == "phi" and ax.get_xlabel() == "j"
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="between 0 and 1"):
        plotting.plot_similarity_map(phi * 2)
    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_similarity_map(np.ones(3))


def test_plane_extent_names_the_bad_vector():
    # regression: these failed inside numpy ("all the input array dimensions ...", "not iterable")
    with pytest.raises(ValueError, match="vector 'u' must have 3 entries"):
        plotting.plane_extent(None, [0, 1, 1], [])
    with pytest.raises(TypeError, match="vector 'v' must be 3 numbers"):
        plotting.plane_extent([1, 0, 1], "text", [])
    with pytest.raises(TypeError, match="vectors must be a list of 3-vectors"):
        plotting.plane_extent([1, 0, 1], [0, 1, 1], 5)
    with pytest.raises(ValueError, match=r"vector 'vectors\[1\]' must have 3 entries"):
        plotting.plane_extent([1, 0, 1], [0, 1, 1], [[1, 1, 2], [1, 1]])


@pytest.mark.parametrize("call, error, message", [
    (lambda: plotting.plot_attention("text", ["a"]), TypeError, "weights must be a 2-D array of numbers"),
    (lambda: plotting.plot_attention(np.eye(2), None), TypeError, "tokens must be a list of words"),
    (lambda: plotting.plot_similarity_map(object()), TypeError, "phi must be a 2-D array of numbers"),
    (lambda: plotting.smooth("text"), TypeError, "values must be a 1-D array of numbers"),
    (lambda: plotting.smooth([]), ValueError, r"values must be a non-empty 1-D array, got shape \(0,\)"),
    (lambda: plotting.plot_matrix(NOTES_W, pivots="ab"), TypeError, "pivots must be a list of column indices"),
    (lambda: plotting.plot_matrix(NOTES_W, pivots=[0, 5]), ValueError, r"pivots\[1\] must be <= 4"),
    (lambda: plotting.plot_storage_fraction(None), TypeError, "sizes must be a list of layer sizes"),
    (lambda: plotting.plot_storage_fraction([768, "text"]), TypeError, r"sizes\[1\] must be an integer"),
    (lambda: plotting.plot_grouped_bars(3, {"LoRA": [1]}, "n"), TypeError, "groups must be a list of group names"),
    (lambda: plotting.plot_learning_rate_sweep({"LoRA": [(1e-3, 0.5)]}, chosen=[1e-3]), TypeError,
     "chosen must be a dict"),
    (lambda: plotting.plot_learning_rate_sweep({"LoRA": [(1e-3, 0.5)]}, chosen={"LoRA": 1e-2}), ValueError,
     r"chosen\['LoRA'\] = 0.01 is not one of the learning rates tried"),
    (lambda: plotting.plot_scores_with_spread(["LoRA"], ["ner"]), TypeError, "summaries must be a dict"),
    (lambda: plotting.plot_scores_with_spread({"LoRA": SimpleNamespace()}, ["ner"]), TypeError,
     r"summaries must be a dict mapping \(label, group\) pairs"),
    (lambda: plotting.plot_scores_with_spread(SPREAD, None), TypeError, "groups must be a list of group names"),
    (lambda: plotting.plot_scores_with_spread(SPREAD, []), ValueError, "groups is empty"),
    (lambda: plotting.plot_vectors_and_plane({"a": [1, 0, 1]}, plane=-1), TypeError, "plane must be a list"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
    matplotlib.pyplot.close("all")


def test_the_checked_arguments_still_take_what_they_took():
    figures = [plotting.plot_attention([[0.5, 0.5], [1, 0]], ("a", "b")),
               plotting.plot_matrix(NOTES_W, pivots=np.array([0, 1])),
               plotting.plot_storage_fraction(np.array([8, 16])),
               plotting.plot_scores_with_spread(SPREAD, ("ner",))]
    assert all(isinstance(fig, matplotlib.figure.Figure) for fig in figures)
    assert np.allclose(plotting.smooth(np.array([1, 3])), [1, 2])
    matplotlib.pyplot.close("all")
