"""Tests for lora_teach.plotting: figures are drawn with the right content; bad input refused."""

import itertools

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
from helpers import NOTES_W

from lora_teach import plotting


@pytest.fixture(autouse=True)
def every_figure_is_readable_and_fits_the_column():
    """Every figure a test here makes, in the course's style, has no text below
    plotting.MIN_FONT_PT and is no wider than the notebook's column (plotting.MAX_WIDTH_PX)."""
    plotting.use_course_style()
    before = set(plt.get_fignums())
    yield
    made = [plt.figure(number) for number in plt.get_fignums() if number not in before]
    problems = {number: plotting.figure_problems(fig) for number, fig in zip(plt.get_fignums(), made)}
    for fig in made:
        plt.close(fig)
    assert not any(problems.values()), problems


def test_figure_problems_names_small_text_and_a_wide_figure():
    plotting.use_course_style()
    fig, ax = plt.subplots(figsize=(11, 3))     # the tight box drops the margins: about 10 inches
    ax.set_title("a small title", fontsize=8)
    problems = plotting.figure_problems(fig)
    plt.close(fig)
    assert any("'a small title' at 8 pt" in p for p in problems)
    assert any("wider than 800" in p for p in problems)
    fig, ax = plt.subplots()
    ax.plot([1, 2], label="a line")
    ax.legend()
    assert plotting.figure_problems(fig) == []
    plt.close(fig)


def test_the_course_style_shows_figures_sharp_at_twice_the_pixels():
    assert plotting.FIGURE_FORMAT == "retina" and plotting.COURSE_STYLE["savefig.dpi"] == 2 * plotting.DISPLAY_DPI
    assert plotting.MIN_FONT_PT * plotting.DISPLAY_DPI / 72 >= 14      # CSS pixels
    sizes = [v for k, v in plotting.COURSE_STYLE.items() if k.endswith(("size", "labelsize")) and k != "figure.figsize"]
    assert sizes and min(sizes) >= plotting.MIN_FONT_PT


def test_a_plot_is_stored_as_a_small_palette_png_and_a_photo_as_a_jpeg():
    import io

    from PIL import Image

    fig, ax = plt.subplots()
    ax.plot([1, 3, 2], label="a line")
    ax.legend()
    mime, data, size = plotting.figure_image(fig)
    png = Image.open(io.BytesIO(data))
    assert mime == "image/png" and png.format == "PNG" and png.mode == "P"
    assert png.size in {(2 * size["width"] + e, 2 * size["height"] + f) for e in (0, 1) for f in (0, 1)}
    assert not plotting.shows_photo(fig)
    matplotlib_png = io.BytesIO()
    fig.savefig(matplotlib_png, format="png", dpi=2 * plotting.DISPLAY_DPI, bbox_inches="tight")
    assert len(data) < len(matplotlib_png.getvalue()) / 2          # the point of the palette

    rows, columns = 100, plotting.PHOTO_PIXELS // 100             # just large enough to be a photo
    photo = np.random.default_rng(0).random((rows, columns))
    fig, ax = plt.subplots()
    ax.imshow(photo, cmap="gray")
    assert plotting.shows_photo(fig)
    mime, data, size = plotting.figure_image(fig)
    assert mime == "image/jpeg" and Image.open(io.BytesIO(data)).format == "JPEG"
    fig, ax = plt.subplots()
    ax.imshow(photo[:, :-1], cmap="gray")                          # one column short: a plot
    assert not plotting.shows_photo(fig) and plotting.figure_image(fig)[0] == "image/png"


def test_in_a_notebook_each_figure_is_stored_once_in_its_format_with_size_and_alt():
    from IPython.core.interactiveshell import InteractiveShell

    from lora_teach import alt_text

    shell = InteractiveShell.instance()
    try:
        plotting.use_course_style()
        plot, ax = plt.subplots()
        ax.plot([1, 2], label="a line")
        ax.set_title("a plot")
        photo, ax = plt.subplots()
        ax.imshow(np.random.default_rng(0).random((200, 150)), cmap="gray")
        for fig, mime in ((plot, "image/png"), (photo, "image/jpeg")):
            data, metadata = shell.display_formatter.format(fig)
            assert set(data) == {mime, "text/plain"}
            stored_as, _, size = plotting.figure_image(fig)
            assert stored_as == mime and metadata[mime] == {**size, "alt": alt_text.describe_figure(fig)}
    finally:
        InteractiveShell.clear_instance()


def test_figure_image_and_shows_photo_refuse_anything_but_a_figure():
    for helper in (plotting.figure_image, plotting.shows_photo):
        with pytest.raises(TypeError, match="fig must be a matplotlib.Figure, got str"):
            helper("a picture")


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


def test_plot_image_grid_gives_each_image_its_width_and_outlines_the_crop():
    images = {f"image {i}": np.zeros((60, 50)) for i in range(6)}
    fig = plotting.plot_image_grid(images, ncols=3, box=(10, 20, 15, 25), box_label="the crop")
    width, height = fig.get_size_inches()
    assert width == 7.5 and height == pytest.approx(2 * (2.5 * 60 / 50 + 0.5))
    outline = fig.axes[0].patches[0]
    assert outline.get_width() == 25 and outline.get_height() == 15 and outline.get_xy() == (19.5, 9.5)
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["the crop"]
    assert not fig.axes[1].patches
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="box must be"):
        plotting.plot_image_grid(images, box=(1, 2, 3))
    with pytest.raises(ValueError, match="box\\[2\\]"):
        plotting.plot_image_grid(images, box=(1, 2, -3, 4))


def _photo_factors(d=30, k=20):
    photo = np.clip(np.add.outer(np.linspace(0, 1, d), np.linspace(0, 0.5, k)) / 1.5, 0, 1)
    photo = photo + 0.05 * np.random.default_rng(0).standard_normal((d, k))
    return photo, np.linalg.svd(photo, full_matrices=False)


def test_draw_photo_at_rank_shows_the_approximation_its_count_and_its_error():
    photo, factors = _photo_factors()
    fig = plotting.draw_photo_at_rank(factors, 3)
    U, sigma, Vt = factors
    approximation = np.clip((U[:, :3] * sigma[:3]) @ Vt[:3], 0, 1)
    assert np.allclose(fig.axes[0].images[0].get_array(), approximation)
    error = np.linalg.norm(photo - (U[:, :3] * sigma[:3]) @ Vt[:3]) / np.linalg.norm(photo)
    title = fig.get_suptitle()
    assert title.startswith("rank 3: stores 3·(30 + 20) = 150 numbers vs 30·20 = 600 (25%)")
    assert title.endswith(f"relative error {error:.1%}")
    error_curve = fig.axes[1].lines[0]
    assert np.isclose(error_curve.get_ydata()[2], error) and error_curve.get_ydata()[-1] == 0
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("factors, rank, error, words", [
    ("photo", 3, TypeError, "factors must be the three arrays"),
    ((np.ones((4, 2)), np.ones(3), np.ones((3, 5))), 1, ValueError, "do not fit together"),
    ((np.ones((4, 2)), np.array([1.0, 2.0]), np.ones((2, 5))), 1, ValueError, "decreasing order"),
    ((np.ones((4, 2)), np.array(["a", "b"]), np.ones((2, 5))), 1, TypeError, "factors\\[1\\] \\(sigma\\)"),
    (None, 1, TypeError, "factors must be"),
    ("ok", 0, ValueError, "rank"), ("ok", 21, ValueError, "rank"), ("ok", 2.5, TypeError, "rank")])
def test_draw_photo_at_rank_refuses_bad_input_and_names_it(factors, rank, error, words):
    if isinstance(factors, str) and factors == "ok":
        factors = _photo_factors()[1]
    with pytest.raises(error, match=words):
        plotting.draw_photo_at_rank(factors, rank)


def test_draw_photo_at_rank_driven_by_a_slider():
    from lora_teach import interactive
    _, factors = _photo_factors()
    explorer = interactive.Explorer(lambda rank: plotting.draw_photo_at_rank(factors, rank), rank=(1, 20, 5))
    assert explorer.values == {"rank": 5}
    assert explorer.figure.get_suptitle().startswith("rank 5: stores 5·(30 + 20) = 250")
    explorer.controls["rank"].value = 2
    assert explorer.values == {"rank": 2}
    assert explorer.figure.get_suptitle().startswith("rank 2: stores 2·(30 + 20) = 100")
    U, sigma, Vt = factors
    assert np.allclose(explorer.figure.axes[0].images[0].get_array(),
                       np.clip((U[:, :2] * sigma[:2]) @ Vt[:2], 0, 1))


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


# --- notebook 07: plot_similarity_ranks, the map at chosen ranks (and driven by a slider) ------

def _similarity_maps():
    trained = np.linspace(0, 1, 8 * 64).reshape(8, 64)
    return {"trained": trained, "at initialisation": trained[::-1, ::-1] / 2}


def test_similarity_ranks_draws_each_map_up_to_i_and_j_and_names_phi_there():
    maps = _similarity_maps()
    fig = plotting.plot_similarity_ranks(maps, 3, 10, title="A (r = 8) vs A (r = 64)")
    maps_drawn = [ax for ax in fig.axes if ax.images]
    assert len(maps_drawn) == 2 and fig.texts[0].get_text() == "A (r = 8) vs A (r = 64)"
    for ax, (label, phi) in zip(maps_drawn, maps.items()):
        assert np.array_equal(ax.images[0].get_array(), phi[:3, :10])
        top = max(m[:3, :10].max() for m in maps.values())   # one scale for both panels, up to the
        assert ax.images[0].get_clim() == (0, top)               # largest φ shown, so they compare
        assert ax.get_title() == f"{label}: φ(3, 10) = {phi[2, 9]:.2f}"
    assert fig.get_size_inches().tolist() == plotting.plot_similarity_ranks(maps, 8, 64).get_size_inches().tolist()
    matplotlib.pyplot.close("all")


@pytest.mark.parametrize("call, error, message", [
    (lambda: plotting.plot_similarity_ranks(np.ones((8, 64)), 1, 1), TypeError, "maps must be a non-empty dict"),
    (lambda: plotting.plot_similarity_ranks({}, 1, 1), TypeError, "maps must be a non-empty dict"),
    (lambda: plotting.plot_similarity_ranks({"a": "text"}, 1, 1), TypeError, r"maps\['a'\] must be a 2-D array"),
    (lambda: plotting.plot_similarity_ranks({"a": np.ones(3)}, 1, 1), ValueError, r"maps\[.a.\] must be a non-empty"),
    (lambda: plotting.plot_similarity_ranks({"a": 2 * np.ones((2, 2))}, 1, 1), ValueError, "between 0 and 1"),
    (lambda: plotting.plot_similarity_ranks(_similarity_maps(), 0, 1), ValueError, "i must be >= 1, got 0"),
    (lambda: plotting.plot_similarity_ranks(_similarity_maps(), 9, 1), ValueError, "i must be <= 8, got 9"),
    (lambda: plotting.plot_similarity_ranks(_similarity_maps(), 1, 65), ValueError, "j must be <= 64, got 65"),
    (lambda: plotting.plot_similarity_ranks(_similarity_maps(), 2.5, 1), TypeError, "i must be an integer"),
    (lambda: plotting.plot_similarity_ranks(_similarity_maps(), 1, None), TypeError, "j must be an integer"),
])
def test_similarity_ranks_refuses_bad_input_naming_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_similarity_ranks_driven_by_sliders_redraws_at_the_chosen_ranks():
    from lora_teach import interactive
    maps = _similarity_maps()
    explorer = interactive.Explorer(lambda i, j: plotting.plot_similarity_ranks(maps, i, j), i=(1, 8, 8), j=(1, 64, 8))
    assert explorer.values == {"i": 8, "j": 8}
    explorer.controls["i"].value = 4
    explorer.controls["j"].value = 16
    assert explorer.values == {"i": 4, "j": 16}
    drawn = [ax for ax in explorer.figure.axes if ax.images]
    assert np.array_equal(drawn[0].images[0].get_array(), maps["trained"][:4, :16])
    assert drawn[1].get_title() == f"at initialisation: φ(4, 16) = {maps['at initialisation'][3, 15]:.2f}"
    matplotlib.pyplot.close("all")


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
    (lambda: plotting.plot_vectors_and_plane({"a": [1, 0, 1]}, plane=-1), TypeError, "plane must be a list"),
])
def test_bad_input_is_named(call, error, message):
    with pytest.raises(error, match=message):
        call()
    matplotlib.pyplot.close("all")


def test_the_checked_arguments_still_take_what_they_took():
    figures = [plotting.plot_attention([[0.5, 0.5], [1, 0]], ("a", "b")),
               plotting.plot_matrix(NOTES_W, pivots=np.array([0, 1])),
               plotting.plot_storage_fraction(np.array([8, 16]))]
    assert all(isinstance(fig, matplotlib.figure.Figure) for fig in figures)
    assert np.allclose(plotting.smooth(np.array([1, 3])), [1, 2])
    matplotlib.pyplot.close("all")


# ---------------------------------------------------------------------------
# Training and validation curves, the learning-rate sweep
# ---------------------------------------------------------------------------

def drawn_curve(ax, label, train, validation_steps):
    """(smoothed training line, raw training line or None, validation line) of one curve, found
    by what they draw: the legend label, the raw losses, the validation steps."""
    lines = ax.get_lines()
    smoothed = next(line for line in lines if line.get_label() == label)
    raw = [line for line in lines if line is not smoothed and len(line.get_ydata()) == len(train)
           and np.allclose(line.get_ydata(), train) and line.get_color() == smoothed.get_color()]
    val = [line for line in lines if list(line.get_xdata()) == list(validation_steps)
           and line.get_color() == smoothed.get_color()]
    assert len(raw) <= 1 and len(val) == 1
    return smoothed, raw[0] if raw else None, val[0]


def validation(steps):
    return [(s, 1.0) for s in steps]


def test_train_validation_smooths_without_a_start_up_jump_and_shows_the_raw_loss():
    # regression: the running mean grew its window up to 20 steps, so on a falling loss it lagged
    # and bent where the window filled (step 21); now every point is a mean of 20 steps, drawn at
    # their middle, and the raw loss of every step is drawn faintly beneath
    train = np.linspace(2.0, 1.0, 60)    # a straight line: any moving average must stay on it
    fig = plotting.plot_train_validation({"LoRA": (train, validation([20, 40, 60]))}, window=20)
    ax = fig.axes[0]
    smoothed, raw, _ = drawn_curve(ax, "LoRA", train, [20, 40, 60])
    x, y = smoothed.get_xdata(), smoothed.get_ydata()
    assert x[0] == pytest.approx(10.5) and x[-1] == pytest.approx(50.5) and len(x) == 41
    assert np.allclose(y, np.interp(x, np.arange(1, 61), train))   # centred: no lag
    assert np.allclose(np.diff(y, 2), 0)                            # no bend at the window
    assert np.allclose(y, [train[i:i + 20].mean() for i in range(41)])
    assert raw is not None and raw.get_xdata()[0] == 1
    assert raw.get_alpha() <= 0.3 and raw.get_linewidth() < smoothed.get_linewidth() / 2
    assert raw.get_color() == smoothed.get_color() == plotting.COLORS["lora"]
    assert raw.get_zorder() < smoothed.get_zorder()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["LoRA", "training, every step", "training, mean of 20 steps", "validation"]
    # a run shorter than the window: one mean of all its steps
    fig = plotting.plot_train_validation({"LoRA": ([1.0, 0.5], [(2, 0.7)])}, window=20)
    assert np.allclose(drawn_curve(fig.axes[0], "LoRA", [1.0, 0.5], [2])[0].get_ydata(), [0.75])
    matplotlib.pyplot.close("all")


def test_train_validation_tells_apart_curves_of_one_method():
    # regression: three learning rates of full fine-tuning were three close blues, all solid
    # lines with round validation markers
    labels = [f"full fine-tuning, lr {lr:g}" for lr in (1e-3, 3e-3, 1e-2)]
    curves = {label: (np.linspace(2, 1 + k, 50), validation([25, 50])) for k, label in enumerate(labels)}
    curves["LoRA"] = (np.linspace(2, 1, 50), validation([25, 50]))
    fig = plotting.plot_train_validation(curves)
    ax = fig.axes[0]
    drawn = {label: drawn_curve(ax, label, train, [25, 50]) for label, (train, _) in curves.items()}
    trains = {label: lines[0] for label, lines in drawn.items()}
    validations = {label: lines[2] for label, lines in drawn.items()}
    assert len({str(trains[label].get_linestyle()) for label in labels}) == 3
    assert len({validations[label].get_marker() for label in labels}) == 3
    colors = [np.array(matplotlib.colors.to_rgb(trains[label].get_color())) for label in labels]
    assert min(np.abs(a - b).sum() for a, b in itertools.combinations(colors, 2)) > 0.3   # strong contrast
    assert matplotlib.colors.to_hex(colors[1]) == plotting.COLORS["trained"].lower()       # still its method's blue
    assert trains["LoRA"].get_color() == plotting.COLORS["lora"] and trains["LoRA"].get_linestyle() == "-"
    for label in labels:   # a curve's validation line shares its colour and line style
        assert validations[label].get_color() == trains[label].get_color()
        assert validations[label].get_linestyle() == trains[label].get_linestyle()
    # the legend shows each curve with its own line style and marker
    handles = {text.get_text(): handle for text, handle in
               zip(ax.get_legend().get_texts(), ax.get_legend().legend_handles)}
    assert len({(handles[label].get_marker(), str(handles[label].get_linestyle())) for label in labels}) == 3
    matplotlib.pyplot.close(fig)


def test_learning_rate_sweep_tells_apart_series_of_one_colour_and_their_rings():
    # regression: "LoRA" and "LoRA, all linear" were drawn with one colour and one marker, and
    # their rings around a shared chosen rate were two round rings of nearly one size
    points = {"full fine-tuning": [(1e-2, 0.7), (3e-2, 0.5)], "LoRA": [(1e-2, 0.6), (3e-2, 0.68)],
              "LoRA, all linear": [(1e-2, 0.64), (3e-2, 0.68)]}
    chosen = {"full fine-tuning": 1e-2, "LoRA": 3e-2, "LoRA, all linear": 3e-2}
    ax = plotting.plot_learning_rate_sweep(points, chosen).axes[0]
    series = {line.get_label(): line for line in ax.get_lines() if not line.get_label().startswith("_")}
    lora, all_linear = series["LoRA"], series["LoRA, all linear"]
    assert lora.get_marker() != all_linear.get_marker()
    assert lora.get_linestyle() != all_linear.get_linestyle() == ":"   # all linear: dotted, as elsewhere
    assert lora.get_color() == plotting.COLORS["lora"]
    rings = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
    assert len(rings) == 3
    shared = [ring for ring in rings if ring.get_xdata()[0] == 3e-2]
    assert [ring.get_marker() for ring in shared] == [lora.get_marker(), all_linear.get_marker()]
    assert [ring.get_markeredgecolor() for ring in shared] == [lora.get_color(), all_linear.get_color()]
    assert abs(shared[0].get_markersize() - shared[1].get_markersize()) >= 6
    alone = next(ring for ring in rings if ring.get_xdata()[0] == 1e-2)
    assert alone.get_markersize() == min(ring.get_markersize() for ring in rings)
    matplotlib.pyplot.close("all")


def test_scores_with_intervals_draw_each_methods_interval_from_records_or_parts():
    from types import SimpleNamespace

    from lora_teach import comparison

    rng = np.random.default_rng(0)
    parts = {label: np.stack([np.c_[rng.random(50) < p, np.ones(50)] for _ in range(3)]).astype(float)
             for label, p in (("LoRA", 0.8), ("full fine-tuning", 0.6))}
    records = [SimpleNamespace(spec=SimpleNamespace(seed=seed), test_parts=parts["LoRA"][seed]) for seed in range(3)]
    fig = plotting.plot_scores_with_intervals({("LoRA", "fpb"): records,
                                               ("full fine-tuning", "fpb"): parts["full fine-tuning"]}, ["fpb"])
    ax = fig.axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert heights == pytest.approx([comparison.score_interval(parts[label]).estimate for label in parts])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["LoRA", "full fine-tuning"]
    seed_dots = [line for line in ax.lines if line.get_marker() == "o"]
    assert sorted(seed_dots[0].get_ydata()) == pytest.approx(sorted(parts["LoRA"][:, :, 0].mean(axis=1)))
    matplotlib.pyplot.close(fig)


# --- draw_lora_update: notebook 05's interactive figure of the LoRA update (issue 25) ----------

def _factors(d=12, k=10, ranks=6, seed=0):
    generator = np.random.default_rng(seed)
    return generator.standard_normal((d, ranks)) / d ** 0.5, generator.standard_normal((ranks, k)) / k ** 0.5


def test_draw_lora_update_shows_the_spectrum_size_and_count_of_the_chosen_update():
    B, A = _factors()
    fig = plotting.draw_lora_update(B, A, r=3, alpha=6.0)
    left, right = fig.axes
    update = (6.0 / 3) * B[:, :3] @ A[:3]
    bars = sorted((p.get_height() for p in left.patches), reverse=True)
    assert np.allclose(bars, np.linalg.svd(update, compute_uv=False)[:3])
    assert "σ4…σ10 are exactly 0" in left.get_title()
    every_r, sizes = right.lines[0].get_data()
    assert list(every_r) == [1, 2, 3, 4, 5, 6]
    assert np.allclose(sizes, [np.linalg.norm((6.0 / i) * B[:, :i] @ A[:i]) for i in range(1, 7)])
    ringed = right.lines[1].get_data()
    assert ringed[0][0] == 3 and np.isclose(ringed[1][0], np.linalg.norm(update))
    title = fig._suptitle.get_text()
    assert "r = 3, α = 6, α/r = 2" in title and "= 66 numbers" in title
    matplotlib.pyplot.close(fig)


def test_draw_lora_update_keeps_its_axes_when_r_or_alpha_moves():
    B, A = _factors()
    limits = set()
    for r, alpha in ((1, 1.0), (6, 64.0), (3, 8.0)):
        fig = plotting.draw_lora_update(B, A, r=r, alpha=alpha)
        limits.add(tuple(ax.get_ylim() for ax in fig.axes))
        assert all(ax.get_ylim()[0] < p.get_height() < ax.get_ylim()[1]
                   for ax in fig.axes[:1] for p in ax.patches if p.get_height() > 0)
        matplotlib.pyplot.close(fig)
    assert len(limits) == 1


def test_draw_lora_update_takes_tensors_that_require_grad():
    import torch
    B, A = (torch.tensor(m, requires_grad=True) for m in _factors())
    fig = plotting.draw_lora_update(B, A, r=2, alpha=8)
    assert len(fig.axes[0].patches) == 2
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda B, A: plotting.draw_lora_update(B, A.T, r=2, alpha=8), ValueError, "same R"),
    (lambda B, A: plotting.draw_lora_update(B[0], A, r=2, alpha=8), ValueError, "B must be a non-empty 2-D"),
    (lambda B, A: plotting.draw_lora_update(B, "A", r=2, alpha=8), TypeError, "A must be a 2-D array"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=0, alpha=8), ValueError, "r must be >= 1"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=7, alpha=8), ValueError, "r must be <= 6"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=2.0, alpha=8), TypeError, "r must be an integer"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=2, alpha=0), ValueError, "alpha must be > 0"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=2, alpha="8"), TypeError, "alpha must be a real number"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=2, alpha=8, alpha_range=8), TypeError,
     "alpha_range must be a pair"),
    (lambda B, A: plotting.draw_lora_update(B, A, r=2, alpha=8, alpha_range=(8, 1)), ValueError,
     "alpha_range[1] must be >= 8"),
    (lambda B, A: plotting.draw_lora_update(B * np.nan, A, r=2, alpha=8), ValueError, "finite numbers"),
    (lambda B, A: plotting.draw_lora_update(B * 0, A, r=2, alpha=8), ValueError, "no update to draw"),
])
def test_draw_lora_update_refuses_bad_input_naming_the_argument(call, error, words):
    with pytest.raises(error) as raised:
        call(*_factors())
    assert words in str(raised.value), str(raised.value)
    matplotlib.pyplot.close("all")


def test_draw_lora_update_driven_through_an_explorer_from_code():
    from lora_teach import interactive
    B, A = _factors(d=16, k=16, ranks=16)
    explorer = interactive.Explorer(lambda r, alpha: plotting.draw_lora_update(B, A, r, alpha),
                                    r=(1, 16, 8), alpha=(1, 64, 8))
    assert explorer.values == {"r": 8, "alpha": 8}
    assert "r = 8, α = 8" in explorer.figure._suptitle.get_text()   # the stored picture: the defaults
    explorer.controls["r"].value = 2
    explorer.controls["alpha"].value = 32
    assert explorer.values == {"r": 2, "alpha": 32}
    left, right = explorer.figure.axes
    assert "r = 2, α = 32, α/r = 16" in explorer.figure._suptitle.get_text()
    assert len(left.patches) == 2 and right.lines[1].get_xdata()[0] == 2
    assert np.isclose(right.lines[1].get_ydata()[0], np.linalg.norm(16 * B[:, :2] @ A[:2]))
    matplotlib.pyplot.close("all")


# --- issue 25 (notebook 01): the shading has a legend, marked entries, the SVD picture ---

def _legend_texts(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_matrix_says_what_its_grey_shade_means_and_marks_entries_without_a_box_colour():
    fig = plotting.plot_matrix(NOTES_W, pivots=[0, 1, 2], marked=[(3, 3), (1, 5)], marked_label="differs")
    ax = fig.axes[0]
    assert "grey shade: darker = larger entry" in _legend_texts(ax) and "differs" in _legend_texts(ax)
    hatched = [p for p in ax.patches if p.get_hatch()]
    assert sorted(p.get_xy() for p in hatched) == [(1.5, 1.5), (3.5, -0.5)]   # C3 row 3, C5 row 1
    box_colours = {matplotlib.colors.to_hex(p.get_edgecolor()) for p in ax.patches if not p.get_hatch()}
    assert {matplotlib.colors.to_hex(p.get_edgecolor()) for p in hatched}.isdisjoint(box_colours)
    matplotlib.pyplot.close(fig)
    fig = plotting.plot_matrix(NOTES_W)   # no pivots: the shade is still explained
    assert _legend_texts(fig.axes[0]) == ["grey shade: darker = larger entry"]
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("marked, error, words", [
    ([(0, 1)], ValueError, "marked\\[0\\] row must be >= 1"), ([(1, 6)], ValueError, "column must be <= 5"),
    ([(1, 2, 3)], ValueError, "a \\(row, column\\) pair"), ("ab", TypeError, "marked must be a list")])
def test_plot_matrix_refuses_marked_entries_outside_the_matrix(marked, error, words):
    with pytest.raises(error, match=words):
        plotting.plot_matrix(NOTES_W, marked=marked)
    matplotlib.pyplot.close("all")


def test_plot_singular_values_takes_colours_by_label_and_keeps_the_cycle_otherwise():
    fig = plotting.plot_singular_values({"a": [2.0, 1.0], "b": [3.0, 0.5]}, colors={"b": "#222222"})
    a, b = fig.axes[0].get_lines()[:2]
    assert matplotlib.colors.to_hex(b.get_color()) == "#222222"
    assert matplotlib.colors.to_hex(a.get_color()) == plotting.COLORS["trained"].lower()
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="keys are among the labels"):
        plotting.plot_singular_values({"a": [1.0]}, colors={"z": "red"})


def test_plot_svd_of_2x2_draws_the_circle_each_factor_makes():
    M = np.array([[2.0, 1.0], [0.0, 1.0]])
    fig = plotting.plot_svd_of_2x2(M)
    assert [ax.get_title() for ax in fig.axes] == ["1. Vᵀ: rotate (or reflect)", "2. Σ: stretch along the axes",
                                                  "3. U: rotate into the output space"]
    sigma = np.linalg.svd(M, compute_uv=False)
    after = [ax.get_lines()[1].get_xydata() for ax in fig.axes]   # each panel's solid shape
    assert np.allclose(np.linalg.norm(after[0], axis=1), 1)                    # still the unit circle
    assert np.isclose(np.abs(after[1][:, 0]).max(), sigma[0], rtol=1e-3)      # semi-axes σ₁ and σ₂
    assert np.isclose(np.abs(after[1][:, 1]).max(), sigma[1], rtol=1e-3)
    angle = np.linspace(0, 2 * np.pi, 241)
    assert np.allclose(after[2], (M @ np.stack([np.cos(angle), np.sin(angle)])).T)   # M x itself
    labels = {t.get_text() for ax in fig.axes for t in ax.texts}
    assert {"v₁", "v₂", "e₁", "σ₁e₁", "σ₂e₂", "σ₁u₁", "σ₂u₂"} <= labels
    matplotlib.pyplot.close(fig)
    with pytest.raises(ValueError, match="2×2"):
        plotting.plot_svd_of_2x2(np.eye(3))
