"""Stepping through a trace in a notebook: event by event, phase by phase (``trace.step()``).

The notebook twin of ``raysim replay --step`` (``stepper.py``): buttons move one event or one
phase back or forth, a slider jumps anywhere, and the panel shows the event in words with
what it changed in the founding document's tables (rows added ``+``, removed ``-``).

Where widgets cannot run (a notebook read on a code host, a static export, no ipywidgets),
the same object shows a static page instead: the first steps of the phase asked for, each
with its changes, and how to step interactively. A live notebook shows the widget; the saved
notebook keeps both, and each reader gets the one they can see.

Runs in: the reader's process (a Jupyter kernel). Each step costs two ``Trace.state_at``
calls (milliseconds); steps are computed when first shown and kept.
"""

from __future__ import annotations

import io

from rich.console import Console, Group

from raysim.trace import sequence, stepper
from raysim.trace.labels import Labels
from raysim.trace.render import TEXT_WIDTH
from raysim.trace.stored_where import StoredWhere

# Steps shown by the static page (where widgets cannot run).
STATIC_STEPS = 25


class StepView:
    """The events of a trace, each with what it changed, shown one at a time."""

    def __init__(self, trace, phase: int | None = None) -> None:
        self.trace = trace
        self.labels = Labels.of(trace)
        records = trace.records
        # Where each driver call begins: the phase buttons jump between these.
        self.phase_starts = [i for i, e in enumerate(records) if e["ev"] == "phase.begin"]
        self.position = 0
        if phase is not None:
            group = sequence.phase_group(trace, phase)  # ValueError names the phases there are
            indices = sequence.group_indices(trace, group)
            self.position = indices[0] if indices else 0
        self._tables: dict[int, set[str]] = {}
        self._widget = None

    def __len__(self) -> int:
        return len(self.trace.records)

    # -- one step ----------------------------------------------------------------------------

    def _rows(self, index: int) -> set[str]:
        if index < 0:
            return set()
        if index not in self._tables:
            self._tables[index] = stepper.row_lines(StoredWhere(self.trace, index, self.labels))
        return self._tables[index]

    def step(self, index: int) -> Group:
        """Event ``index`` in words, and the rows it added to or removed from the tables."""
        records = self.trace.records
        return stepper.render_step(f"{index + 1}/{len(self)}", records[index],
                                   records[0]["ts"], self.labels, self._rows(index - 1),
                                   self._rows(index), quiet="(the tables did not change)")

    def next_phase(self, index: int) -> int:
        return next((i for i in self.phase_starts if i > index), index)

    def previous_phase(self, index: int) -> int:
        return next((i for i in reversed(self.phase_starts) if i < index), 0)

    # -- showing it --------------------------------------------------------------------------

    def _html(self, renderable) -> str:
        # force_jupyter=False: in a notebook rich would print to the cell itself as well,
        # and the view would show twice.
        console = Console(record=True, file=io.StringIO(), width=TEXT_WIDTH,
                          force_jupyter=False)
        console.print(renderable)
        return console.export_html(inline_styles=True)

    def _repr_html_(self) -> str:
        """The static page: the first steps from where it starts."""
        end = min(len(self), self.position + STATIC_STEPS)
        steps = [self.step(i) for i in range(self.position, end)]
        more = len(self) - end
        note = (f"<p><i>Steps {self.position + 1}-{end} of {len(self)}"
                + (f"; {more} more" if more else "")
                + ". Run the notebook to step with buttons (ipywidgets), or "
                  "<code>raysim replay TRACE --step</code> in a terminal.</i></p>")
        return note + self._html(Group(*steps))

    def widget(self):
        """The interactive stepper: an ipywidgets box (ImportError without ipywidgets)."""
        import ipywidgets as widgets

        if self._widget is not None:
            return self._widget
        slider = widgets.IntSlider(value=self.position, min=0, max=max(0, len(self) - 1),
                                   description="event", continuous_update=False,
                                   layout=widgets.Layout(width="60%"))
        panel = widgets.HTML()
        buttons = {label: widgets.Button(description=label, layout=widgets.Layout(width="auto"))
                   for label in ("◀ phase", "◀ event", "event ▶", "phase ▶")}
        moves = {"◀ phase": self.previous_phase, "phase ▶": self.next_phase,
                 "◀ event": lambda i: max(0, i - 1),
                 "event ▶": lambda i: min(len(self) - 1, i + 1)}

        def show(change=None) -> None:
            self.position = slider.value
            panel.value = self._html(self.step(slider.value))

        for label, button in buttons.items():
            button.on_click(lambda _, move=moves[label]: setattr(slider, "value",
                                                                 move(slider.value)))
        slider.observe(show, names="value")
        show()
        self._widget = widgets.VBox([widgets.HBox([*buttons.values(), slider]), panel])
        return self._widget

    def _repr_mimebundle_(self, include=None, exclude=None):
        """The widget where a live kernel can run it, the static page for everyone else
        (both are saved with the notebook; a code host shows the page)."""
        bundle = {"text/html": self._repr_html_(),
                  "text/plain": f"<StepView: {len(self)} events; step with the buttons, or "
                                f"read the first {STATIC_STEPS}>"}
        try:
            view = self.widget()._repr_mimebundle_()
        except ImportError:
            return bundle
        if view:
            bundle.update({k: v for k, v in view.items() if k != "text/plain"})
        return bundle
