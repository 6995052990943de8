"""Tests for lora_teach.plotting: figures are drawn with the right content; bad input refused."""

import matplotlib
import numpy as np
import pytest

from lora_teach import plotting
from conftest import NOTES_W


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
    assert np.isfinite(plotting.COURSE_STYLE["figure.figsize"][0])
