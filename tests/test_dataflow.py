"""The data-flow graph of the founding program: which objects moved between which processes
and stores, with their exact sizes, as the seed's visual summary draws it."""

import io

import pytest
from rich.console import Console
from seed_model import BatchPredictor, load_trained_model, write_parquet

import raysim
from raysim.trace import load
from raysim.trace.dataflow import (DataFlow, dataflow_figure, dataflow_graph, dataflow_layout,
                                   format_bytes)

# As in examples/seed_example.py: the first two results are too big to come back inline
# (200,000 rows, about 200 KB, over max_direct_call_object_size's 100 KiB) and go into the
# store; the third (1,000 rows) goes back to the driver inside task_done.
ROWS = (200_000, 200_000, 1_000)


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    """The founding program, run once for the module."""
    tmp = tmp_path_factory.mktemp("dataflow")
    path = str(tmp / "trace.jsonl")
    raysim.init(num_cpus=2, trace_path=path)
    try:
        model_ref = raysim.put(load_trained_model())
        actors = [BatchPredictor.remote(model_ref) for _ in range(3)]
        files = [write_parquet(tmp / f"d{i}.parquet", rows) for i, rows in enumerate(ROWS)]
        raysim.get([actors[i].predict.remote(files[i]) for i in range(3)])
    finally:
        raysim.shutdown()
    return load(path)


@pytest.fixture(scope="module")
def graph(trace):
    return dataflow_graph(trace)


def _model_put(trace) -> dict:
    return next(e for e in trace.records
                if e["ev"] == "object.serialized" and e["proc"] == "driver")


def _actor_workers(trace) -> dict[str, str]:
    """actor id -> the name of the worker that hosts it."""
    names = trace.process_names()
    return {e["actor"]: names[e["worker_pid"]] for e in trace.records
            if e["ev"] == "gcs.actor_state" and e["state"] == "ALIVE"}


def _calls(trace) -> list[dict]:
    return [e for e in trace.records
            if e["ev"] == "task.submitted" and e["task_kind"] == "actor_task"]


def test_the_driver_puts_the_model_into_the_store(trace, graph):
    put = _model_put(trace)
    store = f"store:{put['node']}"
    assert graph.nodes[store]["role"] == "store"
    assert graph.nodes["driver"]["role"] == "driver"
    edge = graph.edges["driver", store]
    assert edge["objects"] == [put["obj"]]
    assert edge["bytes"] == put["size"]
    assert edge["kinds"] == {"put"} and edge["messages"] == 0
    assert edge["label"] == f"1 object, {format_bytes(put['size'])}"
    assert graph.nodes[store]["objects"][put["obj"]] == (put["size"], "put function")


def test_each_actor_reads_the_model_from_the_store(trace, graph):
    put = _model_put(trace)
    store = f"store:{put['node']}"
    workers = _actor_workers(trace)
    assert len(set(workers.values())) == 3, "one worker per actor"
    created = [e["actor"] for e in trace.records
               if e["ev"] == "task.submitted" and e["task_kind"] == "actor_creation"]
    for number, actor in enumerate(created):
        worker = workers[actor]
        assert graph.nodes[worker]["role"] == "actor"
        assert graph.nodes[worker]["actors"] == [f"BatchPredictor#{number + 1}"]
        edge = graph.edges[store, worker]
        assert put["obj"] in edge["objects"]
        assert "argument" in edge["kinds"], "read while resolving __init__'s arguments"
        assert edge["bytes"] >= put["size"]


def test_large_results_go_to_the_store_and_the_small_one_to_the_driver(trace, graph):
    store = f"store:{_model_put(trace)['node']}"
    workers = _actor_workers(trace)
    calls = _calls(trace)
    results = [call["returns"][0] for call in calls]
    inlined = [e for e in trace.records if e["ev"] == "object.inlined"]
    assert [e["obj"] for e in inlined] == [results[2]], "only the 1,000-row result is small"

    for call, obj in zip(calls[:2], results[:2]):
        worker = workers[call["actor"]]
        written = next(e for e in trace.records
                       if e["ev"] == "object_store.written" and e["obj"] == obj)
        edge = graph.edges[worker, store]
        assert edge["objects"] == [obj] and edge["kinds"] == {"return"}
        assert edge["bytes"] == written["size"] > 100 * 1024
        assert graph.nodes[store]["objects"][obj] == (written["size"],
                                                      "BatchPredictor.predict result")
        assert graph.edges[worker, "driver"]["objects"] == [], "only a ref goes back"

    small = graph.edges[workers[calls[2]["actor"]], "driver"]
    assert small["objects"] == [results[2]]
    assert "task_done" in small["kinds"]
    assert small["bytes"] > inlined[0]["size"], "the value travels inside the message"
    assert small["label"].startswith("1 object, ") and small["label"].endswith(
        f"in {small['messages']} messages")
    assert not graph.has_edge(workers[calls[2]["actor"]], store)

    fetched = graph.edges[store, "driver"]
    assert fetched["objects"] == results[:2] and fetched["kinds"] == {"get"}
    assert fetched["bytes"] == sum(graph.edges[workers[c["actor"]], store]["bytes"]
                                   for c in calls[:2])
    assert fetched["label"] == f"2 objects, {format_bytes(fetched['bytes'])}"


def test_every_message_is_counted_once_on_its_edge(trace, graph):
    names = trace.process_names()
    sends = [e for e in trace.records if e["ev"] == "msg.send"]
    edges = [edge for u, v, edge in graph.edges(data=True) if edge["messages"]]
    assert sum(edge["messages"] for edge in edges) == len(sends)
    assert sum(edge["bytes"] for edge in edges) == sum(e["size"] for e in sends)

    to_raylet = [e for e in sends if e["proc"] == "driver" and names[e["to_pid"]] == "raylet"]
    edge = graph.edges["driver", "raylet"]
    assert edge["messages"] == len(to_raylet)
    assert {"submit_task", "create_object", "seal_object"} <= edge["kinds"]
    to_gcs = [e for e in sends if e["proc"] == "driver" and names[e["to_pid"]] == "gcs"]
    assert graph.edges["driver", "gcs"]["bytes"] == sum(e["size"] for e in to_gcs)
    for worker in _actor_workers(trace).values():
        pushed = [e for e in sends if e["kind"] == "push_task" and names[e["to_pid"]] == worker]
        assert len(pushed) == 2, "__init__, then predict"
        assert "push_task" in graph.edges["raylet", worker]["kinds"]
        assert "actor_update" in graph.edges[worker, "gcs"]["kinds"]


def test_a_small_argument_travels_inside_the_task(trace_file):
    @raysim.remote
    def one():
        return 1

    @raysim.remote
    def plus_one(x):
        return x + 1

    raysim.init(num_cpus=1, trace_path=trace_file)
    try:
        ref = one.remote()
        assert raysim.get(ref) == 1  # now inline in the driver's memory
        assert raysim.get(plus_one.remote(ref)) == 2
    finally:
        raysim.shutdown()
    trace = load(trace_file)
    graph = dataflow_graph(trace)
    names = trace.process_names()
    push = next(e for e in trace.records if e["ev"] == "msg.send" and e["kind"] == "push_task"
                and e["task"] == _task_of(trace, "plus_one"))
    assert ref.id in graph.edges["driver", "raylet"]["objects"]
    assert ref.id in graph.edges["raylet", names[push["to_pid"]]]["objects"]
    assert not any(ref.id in edge["objects"] for u, v, edge in graph.edges(data=True)
                   if u.startswith("store:") or v.startswith("store:"))


def _task_of(trace, name: str) -> str:
    return next(e["task"] for e in trace.records
                if e["ev"] == "task.submitted" and e["name"].endswith(name))


def test_layout_follows_the_seed_picture(graph):
    place = dataflow_layout(graph)
    assert set(place) == set(graph.nodes)
    store = next(n for n in graph if n.startswith("store:"))
    workers = [n for n in graph if n.startswith("worker#")]
    assert place["driver"][0] < place[store][0] < min(place[w][0] for w in workers)
    assert len({place[w][0] for w in workers}) == 1, "workers share a column"
    assert len({place[w][1] for w in workers}) == len(workers)
    for top in ("gcs", "raylet", "zygote"):
        assert place[top][1] > max(y for name, (_, y) in place.items()
                                   if name not in ("gcs", "raylet", "zygote"))


def test_the_figure_draws_nodes_and_labels_and_widens_with_bytes(trace, graph):
    figure = dataflow_figure(trace, graph)
    (ax,) = figure.axes
    nodes = {t.get_gid().removeprefix("node ") for t in ax.texts
             if (t.get_gid() or "").startswith("node ")}
    assert nodes == set(graph.nodes)
    labels = {t.get_text() for t in ax.texts if (t.get_gid() or "").startswith("label ")}
    for u, v, edge in graph.edges(data=True):
        if edge["objects"]:
            assert edge["label"] in labels, f"{u} -> {v} is labelled"
    arrows = {p.get_gid(): p for p in ax.patches if " -> " in (p.get_gid() or "")}
    store = next(n for n in graph if n.startswith("store:"))
    assert arrows[f"driver -> {store}"].get_linewidth() < \
        arrows[f"{store} -> driver"].get_linewidth(), "759 B against 400 KB"


def test_table_png_and_rich(trace, graph, tmp_path):
    flow = DataFlow(trace)
    assert flow._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
    flow.savefig(tmp_path / "flow.png")
    assert (tmp_path / "flow.png").read_bytes().startswith(b"\x89PNG")
    out = io.StringIO()
    Console(file=out, width=200, color_system=None).print(flow)
    rows = [line for line in out.getvalue().splitlines() if line.startswith("│")]
    assert len(rows) == graph.number_of_edges()
    put = _model_put(trace)
    row = next(line for line in rows if line.startswith("│ driver ") and "store:" in line)
    cells = [cell.strip() for cell in row.strip("│").split("│")]
    assert cells == ["driver", f"store:{put['node']}", "put", "1", f"{put['size']:,} B", "0"]


def test_format_bytes():
    assert [format_bytes(n) for n in (0, 759, 999, 1000, 51_378, 999_949, 999_950,
                                      1_401_802, 5 * 10**12, 7 * 10**15)] == [
        "0 B", "759 B", "999 B", "1.0 KB", "51.4 KB", "999.9 KB", "1.0 MB", "1.4 MB",
        "5.0 TB", "7000.0 TB"]
