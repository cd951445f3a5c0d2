"""The two non-dlp servers of ``benchmarks/serving.py``, built from one exported model folder.

The folder (written by ``serving.py`` from dlp's downloaded weights and manifest) holds
``weights.pt`` (the state dict of ``build_network``'s ``nn.Sequential``) and ``spec.json``
(the 64 input columns, which of them dlp kept as features, dlp's per-column median / mean /
std, layer widths and class labels). Both servers do dlp's math: impute the median,
standardise, run the MLP, softmax, arg-max.

* ``create_app``: a minimal FastAPI app, ``POST /predict`` taking dlp's body
  (``{"inputs": [{column: value}]}``) in an ``async def`` that calls torch directly;
  ``BENCH_MODEL_DIR`` names the folder. Run it with uvicorn's ``--factory``.
* ``DigitsModel``: an MLflow pyfunc model over the same folder, taking the pixel matrix
  (MLflow's ``{"inputs": [[...]]}``) and returning labels and probabilities;
  ``python _serving_minimal.py save-mlflow MODEL_DIR OUT_DIR`` (with MLflow's Python, from
  this folder) saves it for ``mlflow models serve``.
"""

from __future__ import annotations

import itertools
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI
from pydantic import BaseModel
from torch import nn

try:
    from mlflow.pyfunc import PythonModel
except ImportError:  # dlp's venv has no MLflow; only the MLflow model needs the base class
    PythonModel = object  # type: ignore[assignment,misc]

SPEC_FILE = "spec.json"
WEIGHTS_FILE = "weights.pt"


class Network:
    """The exported MLP with dlp's input standardisation, ready to predict rows."""

    def __init__(self, model_dir: Path) -> None:
        spec = json.loads((model_dir / SPEC_FILE).read_text())
        self.columns: list[str] = spec["columns"]
        self.medians = np.asarray(spec["medians"], dtype=np.float32)
        self.means = np.asarray(spec["means"], dtype=np.float32)
        self.stds = np.asarray(spec["stds"], dtype=np.float32)
        # Indices of the columns dlp kept (it drops constant ones), in its feature order.
        self.features = np.asarray(spec["features"], dtype=np.int64)
        self.classes: list[Any] = spec["classes"]
        self.module = build_network(spec["widths"])
        self.module.load_state_dict(torch.load(model_dir / WEIGHTS_FILE, weights_only=True))
        self.module.eval()

    def probabilities(self, matrix: np.ndarray) -> np.ndarray:
        """Class probabilities of an ``(n_rows, n_columns)`` matrix of raw values."""
        matrix = np.where(np.isfinite(matrix), matrix, self.medians)
        standardised = ((matrix - self.means) / self.stds)[:, self.features]
        features = torch.from_numpy(standardised.astype(np.float32))
        with torch.inference_mode():
            return torch.softmax(self.module(features), dim=1).numpy()


def build_network(widths: list[int]) -> nn.Sequential:
    """Linear layers of ``widths`` (inputs first, classes last) with ReLU between them."""
    layers: list[nn.Module] = []
    for index, (width_in, width_out) in enumerate(itertools.pairwise(widths)):
        if index:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(width_in, width_out))
    return nn.Sequential(*layers)


class PredictRequest(BaseModel):
    """dlp's request body: one object of column values per row."""

    inputs: list[dict[str, float | None]]


def create_app() -> FastAPI:
    """The minimal FastAPI app over ``$BENCH_MODEL_DIR``."""
    network = Network(Path(os.environ["BENCH_MODEL_DIR"]))
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict[str, Any]:
        matrix = np.array(
            [[row.get(column) for column in network.columns] for row in body.inputs],
            dtype=np.float32,
        )
        probabilities = network.probabilities(matrix)
        return {
            "predictions": [network.classes[i] for i in probabilities.argmax(axis=1).tolist()],
            "probabilities": probabilities.tolist(),
        }

    return app


class DigitsModel(PythonModel):  # type: ignore[misc,valid-type]
    """MLflow pyfunc: pixel matrix in, ``{"label", "probabilities"}`` out."""

    def load_context(self, context: Any) -> None:
        """Load the exported folder that MLflow copied into the model as an artifact."""
        self.network = Network(Path(context.artifacts["model_dir"]))

    def predict(self, context: Any, model_input: Any, params: Any = None) -> dict[str, Any]:
        """Labels and probabilities of each row."""
        probabilities = self.network.probabilities(np.asarray(model_input, dtype=np.float32))
        labels = np.asarray(self.network.classes)[probabilities.argmax(axis=1)]
        return {"label": labels, "probabilities": probabilities}


def save_mlflow_model(model_dir: Path, out_dir: Path) -> None:
    """Save ``DigitsModel`` over ``model_dir`` as an MLflow model folder ``out_dir``."""
    import mlflow.pyfunc
    from mlflow.models import infer_signature

    probe = DigitsModel()
    probe.network = Network(model_dir)
    example = np.zeros((1, len(probe.network.columns)), dtype=np.float32)
    signature = infer_signature(example, probe.predict(None, example))
    mlflow.pyfunc.save_model(
        str(out_dir),
        python_model=DigitsModel(),
        artifacts={"model_dir": str(model_dir)},
        code_paths=[__file__],
        signature=signature,
    )


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "save-mlflow":
        sys.exit("usage: python _serving_minimal.py save-mlflow MODEL_DIR OUT_DIR")
    # Through the module's own name, so the pickled model refers to ``_serving_minimal``
    # (shipped in the model's code folder) rather than to ``__main__``.
    from _serving_minimal import save_mlflow_model as save

    save(Path(sys.argv[2]), Path(sys.argv[3]))
