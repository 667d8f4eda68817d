"""What every matplotlib view shares: turning a Figure into PNG bytes without pyplot.

The views build ``matplotlib.figure.Figure`` objects directly (never ``pyplot``), so a view
made in a script or a test opens no window and leaves no global figure behind; Jupyter shows
them through ``_repr_png_``. Runs in: the reader's process.
"""

from __future__ import annotations

import io


def png_bytes(figure, dpi: int = 100) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(figure)  # attaches itself to the figure
    out = io.BytesIO()
    figure.savefig(out, format="png", dpi=dpi, bbox_inches="tight")
    return out.getvalue()
