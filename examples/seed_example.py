"""The founding document's example, run on raysim.

The code between the two markers is the founding document's, unchanged but for its first
line (``import raysim as ray``; under ``raysim trace`` plain ``import ray`` works too). Before
it, the three parquet files it reads are generated, of three sizes, so that one run shows
both paths a result can take: data1's and data2's results (1,000,000 and 400,000 rows, about
1 MB and 400 KB) are too big to go back inline and are stored in the object store; data3's
(50,000 rows, about 50 KB) goes back inline, under the 100 KiB threshold.
"""

import os

import numpy as np
import pandas as pd

# --- generate the input files (not part of the founding document) -------------------------
_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.makedirs(_DATA_DIR, exist_ok=True)
os.chdir(_DATA_DIR)
for _name, _rows in (("data1.parquet", 1_000_000), ("data2.parquet", 400_000),
                     ("data3.parquet", 50_000)):
    if not os.path.exists(_name):
        _rng = np.random.default_rng(len(_name) + _rows)
        pd.DataFrame({"passenger_count": _rng.integers(1, 7, _rows),
                      "trip_distance": _rng.random(_rows) * 20}).to_parquet(_name)

# --- the founding document's code ----------------------------------------------------------
import raysim as ray
import pandas as pd

# Initialize Ray
ray.init()

# Define a simple model
def load_trained_model():
    def model(batch: pd.DataFrame) -> pd.DataFrame:
        # Predict tip based on passenger count
        predict = batch["passenger_count"] >= 2
        return pd.DataFrame({"score": predict})
    return model

# Define an Actor for batch prediction
@ray.remote
class BatchPredictor:
    def __init__(self, model):
        self.model = model
        self.prediction_count = 0
    
    def predict(self, data_path: str):
        # Read data and make predictions
        df = pd.read_parquet(data_path)
        result = self.model(df)
        self.prediction_count += 1
        return result, self.prediction_count

# Create model and store in object store
model = load_trained_model()
model_ref = ray.put(model)

# Create 3 actor instances
actors = [BatchPredictor.remote(model_ref) for _ in range(3)]

# Process data files in parallel
input_files = ["data1.parquet", "data2.parquet", "data3.parquet"]
futures = [actors[i].predict.remote(input_files[i]) for i in range(3)]

# Get results
results = ray.get(futures)
# --- end of the founding document's code ---------------------------------------------------

for path, (df, count) in zip(input_files, results):
    print(f"{path}: {len(df):,} predictions, {int(df['score'].sum()):,} tips expected, "
          f"prediction_count={count}")
print(f"trace written to {ray.trace_path()}")
