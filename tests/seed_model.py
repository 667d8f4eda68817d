"""The founding document's model and actor, shared by the phase tests."""

import pandas as pd

import raysim as ray


def load_trained_model():
    def model(batch: pd.DataFrame) -> pd.DataFrame:
        predict = batch["passenger_count"] >= 2
        return pd.DataFrame({"score": predict})
    return model


@ray.remote
class BatchPredictor:
    def __init__(self, model):
        self.model = model
        self.prediction_count = 0

    def predict(self, data_path: str):
        df = pd.read_parquet(data_path)
        result = self.model(df)
        self.prediction_count += 1
        return result, self.prediction_count


def write_parquet(path, rows: int) -> str:
    pd.DataFrame({"passenger_count": [(i % 6) + 1 for i in range(rows)]}).to_parquet(path)
    return str(path)


def run_seed_program(trace_file, data_dir, rows: int | tuple = 1000, before_shutdown=None):
    """The founding program on a fresh 2-CPU session traced to ``trace_file``: put the
    model, create 3 actors, one predict call each, get. ``rows``: the files' sizes (one for
    all three, or three). Returns what ``before_shutdown()`` returns (called while the
    session still runs)."""
    sizes = rows if isinstance(rows, tuple) else (rows,) * 3
    ray.init(num_cpus=2, trace_path=trace_file)
    try:
        model_ref = ray.put(load_trained_model())
        actors = [BatchPredictor.remote(model_ref) for _ in range(3)]
        paths = [write_parquet(data_dir / f"d{i}.parquet", sizes[i]) for i in range(3)]
        ray.get([actors[i].predict.remote(paths[i]) for i in range(3)])
        return before_shutdown() if before_shutdown else None
    finally:
        ray.shutdown()


def holders(events: list[dict], oid: str) -> dict[str, str]:
    """The GCS's holders of one object, replayed from its ref events."""
    table: dict[str, str] = {}
    for e in events:
        if e.get("obj") != oid:
            continue
        if e["ev"] == "gcs.ref_added":
            table[e["holder"]] = e["ref_type"]
        elif e["ev"] == "gcs.ref_removed":
            table.pop(e["holder"], None)
    return table
