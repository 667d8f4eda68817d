"""Draw the README's pictures from a fresh run of the founding example.

    python docs/pictures/make.py

writes ``terminal.png`` (phase 2's panel, as ``raysim trace`` prints it), ``timeline.png``
and ``dataflow.png`` beside this file. Each run draws the same pictures with this run's ids
and times.
"""

import os
import subprocess
import sys
import tempfile

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import raysim.trace  # noqa: E402
from raysim.trace import views  # noqa: E402
from raysim.trace.render import to_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLE = os.path.join(HERE, "..", "..", "examples", "seed_example.py")


def terminal_png(text: str, path: str) -> None:
    """Text as a terminal shows it: light on dark, monospace."""
    lines = text.rstrip("\n").splitlines()
    width = max(len(line) for line in lines)
    figure = plt.figure(figsize=(width * 0.075, len(lines) * 0.17 + 0.2), dpi=110)
    figure.patch.set_facecolor("#1e1e1e")
    figure.text(0.01, 0.99, "\n".join(lines), family="DejaVu Sans Mono", fontsize=9,
                color="#e6e6e6", va="top", ha="left", linespacing=1.25)
    figure.savefig(path, facecolor=figure.get_facecolor())
    plt.close(figure)


def main() -> None:
    out = tempfile.mkdtemp(prefix="raysim-pictures-")
    subprocess.run([sys.executable, "-m", "raysim.cli", "trace", "--out", out, EXAMPLE],
                   check=True, capture_output=True)
    trace = raysim.trace.load(os.path.join(out, "trace.jsonl"))
    terminal_png(to_text(trace.phase(2), width=100), os.path.join(HERE, "terminal.png"))
    for name, figure in views.figures(trace):
        if name in ("timeline", "dataflow"):
            figure.savefig(os.path.join(HERE, f"{name}.png"), dpi=90, bbox_inches="tight")
    print("written:", ", ".join(sorted(f for f in os.listdir(HERE) if f.endswith(".png"))))


if __name__ == "__main__":
    main()
