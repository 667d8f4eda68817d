"""The ``raysim`` command line.

``raysim trace [--out DIR] [--png] [--chrome] [--phase N] [--all] [--nodes N] SCRIPT [ARGS...]``
runs a Ray script on raysim, unmodified (``import ray`` means raysim while it runs), writes its
trace to ``DIR/trace.jsonl`` and prints what happened, phase by phase; with ``--nodes N`` the
script's ``ray.init()`` starts an N-node cluster on this machine (``cluster_utils.py``). Options come before
the script, as with ``python -m cProfile``; everything after the script is the script's own
argv. What it prints is bounded (about 300 lines, whatever the run: ``trace/limits.py``);
``--all`` prints every phase, step and row.

``raysim replay TRACE [--phase N] [--step] [--all]`` prints a saved trace the same way, or
walks it one event at a time; ``raysim export TRACE --format chrome|parquet|csv`` converts
one (``--chrome`` on ``trace`` does it right away). ``raysim simulate TRACE`` replays one on
a simulated cluster and ``raysim calibrate TRACE`` fits the model's costs
(``raysim/sim/cli.py``).

Long work shows progress on a terminal's stderr: a script running for more than a couple of
seconds, a large trace loading, the views being prepared. Nothing of it reaches stdout.

Bad input (a script that does not exist, a trace that is not one) gets a one-line error and
a non-zero exit code, never a Python traceback of raysim's own.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import runpy
import sys
import traceback

import raysim


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="raysim", description="Watch how a Ray program really runs inside.")
    parser.add_argument("--version", action="version", version=f"raysim {raysim.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    trace = commands.add_parser(
        "trace", help="run a Ray script on raysim and show what happened inside",
        description="Run SCRIPT with `import ray` resolving to raysim, write its trace to "
                    "DIR/trace.jsonl and print the phases of the run.")
    trace.add_argument("--out", default="raysim-trace", metavar="DIR",
                       help="directory for trace.jsonl (default: ./raysim-trace)")
    trace.add_argument("--chrome", action="store_true",
                       help="also write DIR/trace.chrome.json for ui.perfetto.dev / "
                            "chrome://tracing")
    trace.add_argument("--png", action="store_true",
                       help="also write the figures: DIR/timeline.png, DIR/dataflow.png and "
                            "DIR/sequence-phase-N.png")
    trace.add_argument("--phase", type=int, metavar="N",
                       help="show only phase N (the numbers of the phase panels)")
    trace.add_argument("--all", action="store_true", dest="show_all",
                       help="show every phase, step and table row (by default a long run "
                            "is summarised to about 300 lines)")
    trace.add_argument("--nodes", type=int, default=1, metavar="N",
                       help="run the script on a cluster of N nodes on this machine: its "
                            "ray.init() starts a head node and N-1 more, each a raylet with "
                            "its own object store and workers, and the resources init() "
                            "asks for; actors whose options name no scheduling_strategy are "
                            "spread over the nodes (SPREAD), tasks go where Ray puts them "
                            "(default: 1)")
    trace.add_argument("script", metavar="SCRIPT", help="the Python script to run")
    trace.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="arguments passed to the script")
    replay = commands.add_parser(
        "replay", help="show a saved trace phase by phase",
        description="Read TRACE (a trace.jsonl written by raysim) and print the run phase by "
                    "phase: code line, messages, what is stored where.")
    replay.add_argument("trace", metavar="TRACE", help="the trace file")
    replay.add_argument("--phase", type=int, metavar="N",
                        help="show only phase N (the numbers of the phase panels)")
    replay.add_argument("--all", action="store_true", dest="show_all",
                        help="show every phase, step and table row (by default a long run "
                             "is summarised to about 300 lines)")
    replay.add_argument("--step", action="store_true",
                        help="walk the trace (or phase N) one event at a time: Enter shows "
                             "the next event and what it changed, q quits")
    export = commands.add_parser(
        "export", help="convert a saved trace",
        description="Convert TRACE to a Chrome/Perfetto trace, or its events to Parquet or CSV.")
    export.add_argument("trace", metavar="TRACE", help="the trace file")
    export.add_argument("--format", required=True, choices=("chrome", "parquet", "csv"))
    export.add_argument("-o", "--output", metavar="FILE",
                        help="where to write (default: TRACE with the format's extension)")
    from raysim.sim import cli as sim_cli
    sim_cli.add_parsers(commands)
    options = parser.parse_args(argv)
    if options.command == "simulate":
        return sim_cli.simulate_command(options)
    if options.command == "calibrate":
        return sim_cli.calibrate_command(options)
    if options.command == "trace":
        return trace_command(options.script, options.args, options.out, options.chrome,
                             options.png, options.phase, options.show_all, options.nodes)
    if options.command == "export":
        return export_command(options.trace, options.format, options.output)
    if options.command == "replay":
        if options.step:
            return step_command(options.trace, options.phase)
        return 0 if show_trace(options.trace, options.phase, options.show_all) else 1
    parser.print_help()
    return 0


def trace_command(script: str, args: list[str], out_dir: str, chrome: bool = False,
                  png: bool = False, phase: int | None = None, show_all: bool = False,
                  nodes: int = 1) -> int:
    if nodes < 1:
        print(f"raysim: error: --nodes {nodes} is not a number of nodes; it must be 1 or "
              f"more", file=sys.stderr)
        return 2
    if not os.path.isfile(script):
        print(f"raysim: error: no script {script!r} (it does not exist or is not a file)",
              file=sys.stderr)
        return 2
    # Every path is resolved now, against the directory raysim was started in: the script
    # may change directory (the founding example does), and the trace, the figures and the
    # Chrome trace are written after it ran.
    out_dir = os.path.abspath(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        print(f"raysim: error: cannot create the output directory {out_dir!r}: {e.strerror}",
              file=sys.stderr)
        return 2
    trace_path = os.path.join(out_dir, "trace.jsonl")
    code = run_script(script, args, trace_path, nodes)
    if os.path.exists(trace_path):
        trace = show_trace(trace_path, phase, show_all)
        print(f"raysim: trace written to {trace_path}", file=sys.stderr)
        if chrome:
            export_command(trace_path, "chrome", os.path.join(out_dir, "trace.chrome.json"))
        if png and trace is not None:
            write_figures(trace, out_dir)
    return code


def write_figures(trace, out_dir: str) -> None:
    """The matplotlib views as PNG files beside the trace."""
    from raysim.trace import views

    written = []
    for name, figure in views.figures(trace):
        path = os.path.join(out_dir, f"{name}.png")
        figure.savefig(path, dpi=100, bbox_inches="tight")
        written.append(path)
    print(f"raysim: figures written: {', '.join(written)}", file=sys.stderr)


_EXTENSIONS = {"chrome": ".chrome.json", "parquet": ".parquet", "csv": ".csv"}


def export_command(trace_path: str, fmt: str, output: str | None) -> int:
    """Write the trace as a Chrome/Perfetto trace, or its events table as Parquet or CSV."""
    trace = _load_or_say(trace_path)
    if trace is None:
        return 1
    output = output or os.path.splitext(trace_path)[0] + _EXTENSIONS[fmt]
    try:
        if fmt == "chrome":
            from raysim.trace import chrome
            chrome.write_chrome(trace, output)
        else:
            frame = trace.events.copy()
            for column in frame.columns:  # nested values (dicts, lists) as JSON text
                if frame[column].dtype == object and frame[column].map(
                        lambda v: isinstance(v, (dict, list))).any():
                    frame[column] = frame[column].map(
                        lambda v: None if v is None else json.dumps(v))
            if fmt == "parquet":
                frame.to_parquet(output, index=False)
            else:
                frame.to_csv(output, index=False)
    except OSError as e:
        print(f"raysim: error: cannot write {output!r}: {e.strerror}", file=sys.stderr)
        return 1
    print(f"raysim: {fmt} written to {output}", file=sys.stderr)
    return 0


def _load_or_say(trace_path: str):
    from raysim.trace import load

    if not os.path.isfile(trace_path):
        print(f"raysim: error: no trace file {trace_path!r}", file=sys.stderr)
        return None
    try:
        with progress_bar("loading the trace", os.path.getsize(trace_path)) as advance:
            return load(trace_path, progress=advance)
    except (ValueError, OSError) as e:
        print(f"raysim: error: {e}", file=sys.stderr)  # names the file, the line, the fault
        return None


def show_trace(trace_path: str, phase: int | None = None, show_all: bool = False):
    """Print the run phase by phase: code line, steps, what is stored where. Returns the
    loaded trace, or None when it could not be shown (the error is printed)."""
    from rich.console import Console

    from raysim.trace import phases_view
    from raysim.trace.limits import BOUNDED, UNBOUNDED

    trace = _load_or_say(trace_path)
    if trace is None:
        return None
    console = Console()
    # The view is rendered first, while a progress bar on stderr says how far it got, and
    # then printed at once: the bar and the view would garble each other on one terminal.
    with progress_bar("preparing the views", None) as advance:
        try:
            view = phases_view.RunView(trace, phase, limits=UNBOUNDED if show_all else BOUNDED,
                                       on_panel=lambda done, total: advance(done, total))
        except ValueError as e:  # no such phase
            print(f"raysim: error: {e}", file=sys.stderr)
            return None
        buffer = io.StringIO()
        Console(file=buffer, width=console.width, color_system=console.color_system,
                force_terminal=console.is_terminal, legacy_windows=False).print(view)
    sys.stdout.write(buffer.getvalue())
    sys.stdout.flush()
    return trace


@contextlib.contextmanager
def progress_bar(what: str, total: int | None):
    """A transient progress bar on a terminal's stderr; ``advance(done, total=None)`` moves
    it. Nothing when stderr is not a terminal (a test, a pipe): stdout stays the view."""
    if not sys.stderr.isatty():
        yield lambda done, total=None: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("raysim: {task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(what, total=total)

        def advance(done: int, total: int | None = None) -> None:
            bar.update(task, completed=done, **({"total": total} if total else {}))

        yield advance


def step_command(trace_path: str, phase: int | None) -> int:
    """``replay --step``: one event per Enter, with what it changed in the tables."""
    from rich.console import Console

    from raysim.trace import stepper

    trace = _load_or_say(trace_path)
    if trace is None:
        return 1
    try:
        walk = stepper.Stepper(trace, phase)
    except ValueError as e:
        print(f"raysim: error: {e}", file=sys.stderr)
        return 1
    console = Console()
    console.print(walk.intro())
    prompt = "[Enter: next event, q: quit] " if sys.stdin.isatty() else ""
    for step in walk:
        console.print(step)
        try:
            answer = input(prompt)
        except EOFError:
            break
        if answer.strip().lower() in ("q", "quit"):
            break
    return 0


def run_script(script: str, args: list[str], trace_path: str, nodes: int = 1) -> int:
    """Run ``script`` as ``__main__`` on raysim; return its exit code.

    The script's own output stays as it is; if it raises, its traceback is printed as Python
    would, and whatever ran until then is in the trace.
    """
    from raysim import launch, ray_alias
    from raysim.call_site import reported_at

    ray_alias.install()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script] + list(args)
    path = os.path.abspath(script)  # as `python script.py` does: the script may chdir
    sys.path.insert(0, os.path.dirname(path))
    code = 0
    progress = _Progress(script, trace_path)
    try:
        cluster = None
        if nodes > 1:
            from raysim.cluster_utils import Cluster
            cluster = Cluster.like_init(nodes)
        spread = "SPREAD" if nodes > 1 else None  # the script's actors on different nodes
        with progress, launch.init_defaults(trace_path=trace_path, cluster=cluster,
                                            actor_strategy=spread):
            runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException as e:
        _print_script_traceback(e, script)
        code = 1
    finally:
        # Every process writes its last events before the trace is read; the phase this
        # opens is the script's end, not a line of raysim's.
        with reported_at(os.path.basename(script) + ":end",
                         "(the script ended; raysim trace shuts the runtime down)"):
            raysim.shutdown()
        sys.argv, sys.path[:] = saved_argv, saved_path
        ray_alias.uninstall()
    return code


class _Progress:
    """A one-line status on a terminal's stderr once the script has run for a couple of
    seconds: the driver call it is in and how big the trace has grown. The script's own
    prints appear above it (rich redirects the driver's stdout and stderr while the status
    shows). Nothing when stderr is not a terminal, nor for a script that ends sooner."""

    AFTER_S = 2.0  # a script that ends sooner shows no status

    def __init__(self, script: str, trace_path: str) -> None:
        self.script, self.trace_path = os.path.basename(script), trace_path
        self.thread = None

    def __enter__(self):
        if not sys.stderr.isatty():
            return self
        import threading

        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="raysim-progress")
        self.thread.start()
        return self

    def _line(self) -> str:
        from raysim.trace import writer

        try:
            size = os.path.getsize(self.trace_path)
        except OSError:
            size = 0
        phase = writer.get_phase()
        return (f"raysim: running {self.script}"
                + (f", driver call {phase}" if phase is not None else "")
                + f", trace {size / 1e6:.1f} MB")

    def _run(self) -> None:
        from rich.console import Console

        if self.stop.wait(self.AFTER_S):
            return
        status = Console(stderr=True).status(self._line())
        status.start()
        try:
            while not self.stop.wait(0.25):
                status.update(self._line())
        finally:
            status.stop()

    def __exit__(self, *exc) -> None:
        if self.thread is not None:
            self.stop.set()
            self.thread.join()


def _print_script_traceback(error: BaseException, script: str) -> None:
    """The traceback as ``python script.py`` would print it: from the script's frame on."""
    tb = error.__traceback__
    target = os.path.abspath(script)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


if __name__ == "__main__":
    sys.exit(main())
