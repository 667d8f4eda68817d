"""The ``raysim`` command line.

``raysim replay TRACE`` prints a saved trace the same way; ``raysim export TRACE --format
chrome|parquet|csv`` converts one (``--chrome`` on ``trace`` does it right away).

``raysim trace [--out DIR] SCRIPT [ARGS...]`` runs a Ray script on raysim, unmodified
(``import ray`` means raysim while it runs), writes its trace to ``DIR/trace.jsonl`` and
prints what happened, phase by phase. Options come before the script, as with
``python -m cProfile``; everything after the script is the script's own argv.

Bad input (a script that does not exist, a trace that is not one) gets a one-line error and
a non-zero exit code, never a Python traceback of raysim's own.
"""

from __future__ import annotations

import argparse
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
    trace.add_argument("script", metavar="SCRIPT", help="the Python script to run")
    trace.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="arguments passed to the script")
    replay = commands.add_parser(
        "replay", help="show a saved trace phase by phase",
        description="Read TRACE (a trace.jsonl written by raysim) and print the run phase by "
                    "phase: code line, messages, what is stored where.")
    replay.add_argument("trace", metavar="TRACE", help="the trace file")
    export = commands.add_parser(
        "export", help="convert a saved trace",
        description="Convert TRACE to a Chrome/Perfetto trace, or its events to Parquet or CSV.")
    export.add_argument("trace", metavar="TRACE", help="the trace file")
    export.add_argument("--format", required=True, choices=("chrome", "parquet", "csv"))
    export.add_argument("-o", "--output", metavar="FILE",
                        help="where to write (default: TRACE with the format's extension)")
    options = parser.parse_args(argv)
    if options.command == "trace":
        return trace_command(options.script, options.args, options.out, options.chrome)
    if options.command == "export":
        return export_command(options.trace, options.format, options.output)
    if options.command == "replay":
        return 0 if show_trace(options.trace) else 1
    parser.print_help()
    return 0


def trace_command(script: str, args: list[str], out_dir: str, chrome: bool = False) -> int:
    if not os.path.isfile(script):
        print(f"raysim: error: no script {script!r} (it does not exist or is not a file)",
              file=sys.stderr)
        return 2
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        print(f"raysim: error: cannot create the output directory {out_dir!r}: {e.strerror}",
              file=sys.stderr)
        return 2
    trace_path = os.path.abspath(os.path.join(out_dir, "trace.jsonl"))
    code = run_script(script, args, trace_path)
    if os.path.exists(trace_path):
        show_trace(trace_path)
        print(f"raysim: trace written to {trace_path}", file=sys.stderr)
        if chrome:
            export_command(trace_path, "chrome", os.path.join(out_dir, "trace.chrome.json"))
    return code


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
        return load(trace_path)
    except (ValueError, OSError) as e:
        print(f"raysim: error: {e}", file=sys.stderr)  # names the file, the line, the fault
        return None


def show_trace(trace_path: str) -> bool:
    """Print the run phase by phase: code line, messages, what is stored where."""
    from rich.console import Console

    from raysim.trace import phases_view

    trace = _load_or_say(trace_path)
    if trace is None:
        return False
    phases_view.render_run(trace, Console())
    return True


def run_script(script: str, args: list[str], trace_path: str) -> int:
    """Run ``script`` as ``__main__`` on raysim; return its exit code.

    The script's own output stays as it is; if it raises, its traceback is printed as Python
    would, and whatever ran until then is in the trace.
    """
    from raysim import ray_alias

    os.environ["RAYSIM_TRACE"] = trace_path
    ray_alias.install()
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [script] + list(args)
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, (int, type(None))):
            print(e.code, file=sys.stderr)
    except BaseException as e:
        _print_script_traceback(e, script)
        code = 1
    finally:
        raysim.shutdown()  # every process writes its last events before we read them
        sys.argv, sys.path[:] = saved_argv, saved_path
        ray_alias.uninstall()
        os.environ.pop("RAYSIM_TRACE", None)
    return code


def _print_script_traceback(error: BaseException, script: str) -> None:
    """The traceback as ``python script.py`` would print it: from the script's frame on."""
    tb = error.__traceback__
    target = os.path.abspath(script)
    while tb is not None and os.path.abspath(tb.tb_frame.f_code.co_filename) != target:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


if __name__ == "__main__":
    sys.exit(main())
