"""High-cardinality categorical columns are embedded, learned, and survive a round trip."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from dlp.ml.artifact import load_predictor, read_manifest, train_tabular
from dlp.ml.config import MLPConfig, TrainingConfig


def test_an_embedded_column_carries_its_signal() -> None:
    rng = np.random.default_rng(0)
    n, n_cities = 4000, 300
    city_effect = rng.normal(size=n_cities) * 2
    city = rng.integers(0, n_cities, size=n)
    noise = rng.normal(size=n)
    label = (city_effect[city] + 0.3 * noise > 0).astype(int)
    table = pa.table({"city": [f"c{c}" for c in city], "noise": noise, "label": label})
    trained = train_tabular(
        table,
        target="label",
        task="classification",
        model=MLPConfig(hidden_sizes=[32]),
        training=TrainingConfig(epochs=40, learning_rate=3e-3, seed=1),
    )
    columns = read_manifest(trained.files).preprocessing["columns"]
    manifest_columns = {c["name"]: c["kind"] for c in columns}
    assert manifest_columns["city"] == "embedded"
    # Only the city explains the label: a model ignoring it would sit near 0.5.
    assert trained.metrics["val_accuracy"] >= 0.85, trained.metrics
    predictor = load_predictor(trained.files)
    rows = [{"city": "c7", "noise": 0.0}, {"city": "unseen-city", "noise": 0.0}]
    prediction = predictor.predict(rows)
    assert len(prediction.predictions) == 2
    expected = int(city_effect[7] > 0)
    assert prediction.predictions[0] == expected
