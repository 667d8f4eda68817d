"""What every terminal view shares: showing itself in Jupyter and as plain text.

Each view is a rich renderable (``__rich__``), so ``rich.print(view)`` and ``raysim trace``
draw it in the terminal. The same object shown as a notebook cell's value renders through
``_repr_html_`` (rich's own HTML export of what the terminal would show), and ``str(view)``
is its text at a fixed width, which is what tests compare. Runs in: the reader's process.
"""

from __future__ import annotations

import io

from rich.console import Console

TEXT_WIDTH = 120


def to_text(renderable, width: int = TEXT_WIDTH) -> str:
    """``renderable`` as a fixed-width terminal would print it, without colours."""
    out = io.StringIO()
    Console(file=out, width=width, color_system=None, legacy_windows=False,
            force_jupyter=False).print(renderable)
    return out.getvalue()


class RichView:
    """Mixin: a view with ``__rich__`` (or ``__rich_console__``) gains ``_repr_html_`` and
    ``__str__``."""

    def __str__(self) -> str:
        return to_text(self)

    def _repr_html_(self) -> str:
        # force_jupyter=False: in a notebook rich would print to the cell itself as well,
        # and the view would show twice.
        console = Console(record=True, file=io.StringIO(), width=TEXT_WIDTH,
                          force_jupyter=False)
        console.print(self)
        return console.export_html(inline_styles=True)
