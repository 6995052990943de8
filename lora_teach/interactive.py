"""A figure with sliders: move a slider and the figure above it is drawn again.

A notebook cell ends with ``interactive.explore(draw_photo, rank=(1, 100, 16))``. What is stored
in the notebook, compared by nbval and shown on the site and the slides is the figure at the
default setting (an ordinary PNG output); in a running Jupyter kernel the sliders below it redraw
that same output in place. A static copy of the notebook shows one line that names the sliders
instead of the widgets, which only a live kernel can draw.
"""

from __future__ import annotations

import numbers

import ipywidgets
import matplotlib.pyplot as plt
from IPython.display import display
from matplotlib.figure import Figure

from lora_teach.checks import is_int

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _slider(name: str, setting):
    """The widget for one keyword of :func:`explore`: an ipywidgets value widget as given, or
    a slider made from ``(low, high, default)`` or ``(low, high, default, step)``."""
    if isinstance(setting, ipywidgets.ValueWidget):
        if not setting.description:
            setting.description = name
        return setting
    if not isinstance(setting, tuple) or len(setting) not in (3, 4):
        raise TypeError(f"{name}: give (low, high, default), (low, high, default, step) or an "
                        f"ipywidgets value widget; got {setting!r}")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in setting):
        raise TypeError(f"{name}: the slider's low, high, default and step must be numbers; "
                        f"got {setting!r}")
    low, high, default = setting[:3]
    if not low <= default <= high or low == high:
        raise ValueError(f"{name}: need low <= default <= high and low < high; got {setting!r}")
    if all(is_int(v) for v in setting):
        step = setting[3] if len(setting) == 4 else 1
        return ipywidgets.IntSlider(value=default, min=low, max=high, step=step,
                                    description=name, continuous_update=False)
    step = setting[3] if len(setting) == 4 else (high - low) / 100
    return ipywidgets.FloatSlider(value=default, min=low, max=high, step=step,
                                  description=name, continuous_update=False)


class Explorer:
    """``draw(**values)`` at the sliders' values: the figure is drawn at the defaults when the
    explorer is made, and again whenever a slider moves. ``figure`` is the last one drawn;
    ``values`` the sliders' settings. In a notebook it displays itself (figure, then sliders)."""

    def __init__(self, draw, **controls):
        if not callable(draw):
            raise TypeError(f"draw must be a function that returns a matplotlib Figure; got "
                            f"{type(draw).__name__}")
        if not controls:
            raise ValueError("controls: give at least one slider, e.g. rank=(1, 100, 16)")
        self.draw = draw
        self.controls = {name: _slider(name, setting) for name, setting in controls.items()}
        self._handle = None
        self.figure = self._draw()
        for control in self.controls.values():
            control.observe(self._redraw, names="value")

    @property
    def values(self) -> dict:
        return {name: control.value for name, control in self.controls.items()}

    def _draw(self) -> Figure:
        figure = self.draw(**self.values)
        if not isinstance(figure, Figure):
            raise TypeError(f"draw must return a matplotlib Figure; it returned "
                            f"{type(figure).__name__}")
        plt.close(figure)   # shown through the display below, not again at the cell's end
        return figure

    def _redraw(self, _change=None) -> None:
        self.figure = self._draw()
        if self._handle is not None:
            self._handle.update(self.figure)

    def _ipython_display_(self) -> None:
        self._handle = display(self.figure, display_id=True)
        box = ipywidgets.HBox(list(self.controls.values()))
        bundle = box._repr_mimebundle_() or {}
        names = ", ".join(self.controls)
        plain = f"(Sliders for {names}: move them in a running notebook to redraw the figure above.)"
        display({"text/plain": plain, **{k: v for k, v in bundle.items() if k == WIDGET_VIEW}},
                raw=True)


def explore(draw, **controls) -> Explorer:
    """Show ``draw(**defaults)`` with a slider for each keyword; see :class:`Explorer`."""
    return Explorer(draw, **controls)
