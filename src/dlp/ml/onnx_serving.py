"""Serve a model's network through ONNX Runtime when it computes what PyTorch computes.

``load_serving_predictor`` exports the loaded network to ONNX in memory, runs a
few encoded sample batches through both engines, and keeps ONNX Runtime only
when their outputs agree within ``PARITY_TOLERANCE``; otherwise (or when export
or the session fails) the PyTorch predictor is returned and the reason logged.
Encoding inputs and decoding outputs are the same code either way: only the
network call differs.

A model quantized to int8 (``quantize_dynamic_int8``, file ``INT8_FILE``) may be
served from that graph instead, an explicit opt-in: its outputs move by far more
than the tolerance, so no parity check applies and its accuracy change is measured
on the validation split when it is made (``dlp.ml.quantize``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from torch import Tensor

from dlp.errors import DLPError
from dlp.ml.artifact import load_predictor, read_manifest
from dlp.ml.config import DataKind, InputSpec
from dlp.ml.export import export_model
from dlp.ml.inference import Predictor, ServingEngine

__all__ = [
    "INT8_FILE",
    "PARITY_TOLERANCE",
    "EngineChoice",
    "OnnxRuntimePredictor",
    "int8_predictor",
    "load_serving_predictor",
    "parity_samples",
    "quantize_dynamic_int8",
]

logger = logging.getLogger(__name__)

EngineChoice = Literal["auto", "onnx", "torch"]
PARITY_TOLERANCE = 1e-4
INT8_FILE = "model.int8.onnx"
PARITY_SEED = 0
PARITY_TEXT_LENGTHS = (1, 5, 8)
"""Token counts unlike the export's example (16) and within the smallest max_length (8)."""


class OnnxRuntimePredictor(Predictor):
    """A ``Predictor`` whose network runs in an ONNX Runtime session."""

    engine: ClassVar[ServingEngine] = "onnxruntime"

    def __init__(
        self, predictor: Predictor, session: ort.InferenceSession, *, graph_bytes: int
    ) -> None:
        super().__init__(
            network=predictor.network,
            encoder=predictor._encoder,
            target=predictor._target,
            model_type=predictor.model_type,
            metrics=predictor.metrics,
        )
        self._session = session
        self._graph_bytes = graph_bytes
        self._input_name: str = session.get_inputs()[0].name

    @property
    def resident_bytes(self) -> int:
        """The PyTorch network (kept for export and encoding) plus the ONNX graph."""
        return super().resident_bytes + self._graph_bytes

    def run_network(self, features: Tensor) -> Tensor:
        """The ONNX graph's outputs for one batch of encoded features."""
        (outputs,) = self._session.run(None, {self._input_name: features.numpy()})
        return torch.from_numpy(np.asarray(outputs))


def load_serving_predictor(
    files: Mapping[str, bytes], *, engine: EngineChoice = "auto", int8: bool = False
) -> Predictor:
    """A predictor for serving: ONNX Runtime when it matches PyTorch, else PyTorch.

    ``"auto"`` falls back to PyTorch (logged) when export, the session or the parity
    check fails; ``"onnx"`` raises DLPError instead; ``"torch"`` never tries ONNX.
    ``int8`` serves the quantized graph in ``INT8_FILE`` whatever ``engine`` says.
    """
    predictor = load_predictor(files)
    if int8:
        graph = files.get(INT8_FILE)
        if graph is None:
            raise DLPError(f"the model has no {INT8_FILE}; quantize it first")
        logger.info(
            "serving %s model's int8 variant with ONNX Runtime (no parity check)",
            predictor.model_type,
        )
        return int8_predictor(predictor, graph)
    if engine == "torch":
        return predictor
    candidate, reason = _onnx_predictor(files, predictor)
    if candidate is not None:
        logger.info("serving %s model with ONNX Runtime (%s)", predictor.model_type, reason)
        return candidate
    if engine == "onnx":
        raise DLPError(f"cannot serve this model with ONNX Runtime: {reason}")
    logger.warning("serving %s model with PyTorch: %s", predictor.model_type, reason)
    return predictor


def quantize_dynamic_int8(graph: bytes) -> bytes:
    """An ONNX graph with int8 MatMul/Gemm weights (activations quantized at run time).

    Outputs move by far more than ``PARITY_TOLERANCE``, so this is an opt-in export,
    never what ``load_serving_predictor`` picks on its own.
    """
    with tempfile.TemporaryDirectory(prefix="dlp-quantize-") as folder:
        target = Path(folder) / "model.int8.onnx"
        # The quantizer writes to a path only; the graph is read back and the folder dropped.
        quantize_dynamic(
            onnx.load_from_string(graph),
            target,
            op_types_to_quantize=["MatMul", "Gemm"],
            weight_type=QuantType.QInt8,
        )
        return target.read_bytes()


def int8_predictor(predictor: Predictor, graph: bytes) -> OnnxRuntimePredictor:
    """``predictor`` answering through a quantized graph; DLPError if ORT cannot load it."""
    try:
        session = _onnx_session(graph)
    except Exception as exc:  # ONNX Runtime raises many unrelated types
        raise DLPError(f"cannot load the int8 graph: {type(exc).__name__}: {exc}") from exc
    return OnnxRuntimePredictor(predictor, session, graph_bytes=len(graph))


def parity_samples(data_kind: DataKind, spec: InputSpec) -> list[Tensor]:
    """Encoded batches to compare engines on: zeros and small seeded random inputs."""
    generator = torch.Generator().manual_seed(PARITY_SEED)
    if data_kind == "text":
        # Real rows hold at least one id and are padded (id 0) at the end only.
        batches = [torch.ones(2, 4, dtype=torch.int64)]
        for length in PARITY_TEXT_LENGTHS:
            ids = torch.randint(1, max(spec.vocab_size, 2), (3, length), generator=generator)
            ids[1, (length + 1) // 2 :] = 0
            batches.append(ids)
        return batches
    if data_kind == "image":
        shape: tuple[int, ...] = (spec.channels, spec.image_size, spec.image_size)
        return [torch.zeros(1, *shape), torch.randn(4, *shape, generator=generator)]
    n_categorical = len(spec.categorical_cardinalities)
    n_dense = spec.n_features - n_categorical
    batches = [torch.zeros(1, spec.n_features)]
    for rows in (1, 5):
        dense = torch.randn(rows, n_dense, generator=generator)
        # Categorical columns hold embedding indices: random ones must stay in range.
        categories = [
            torch.randint(0, max(size, 1), (rows, 1), generator=generator).float()
            for size in spec.categorical_cardinalities
        ]
        batches.append(torch.cat([dense, *categories], dim=1))
    return batches


def _onnx_session(graph: bytes) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # One thread per call, and no spinning: a serving process runs many small calls at
    # once (concurrent batches), and idle ORT threads that spin burn the cores those
    # calls and the event loop need.
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(graph, sess_options=options, providers=["CPUExecutionProvider"])


def _onnx_predictor(
    files: Mapping[str, bytes], predictor: Predictor
) -> tuple[OnnxRuntimePredictor | None, str]:
    """The ONNX Runtime predictor if it passes the parity check, and why (not)."""
    try:
        graph = export_model(files, "onnx")
        candidate = OnnxRuntimePredictor(predictor, _onnx_session(graph), graph_bytes=len(graph))
        difference = _max_output_difference(predictor, candidate, read_manifest(files).data_kind)
    except Exception as exc:  # exporters and ONNX Runtime raise many unrelated types
        return None, f"ONNX export or session failed: {type(exc).__name__}: {exc}"
    if difference > PARITY_TOLERANCE:
        return None, f"ONNX outputs differ by {difference:.3g} (tolerance {PARITY_TOLERANCE:g})"
    return candidate, f"max output difference {difference:.3g}"


def _max_output_difference(
    reference: Predictor, candidate: Predictor, data_kind: DataKind
) -> float:
    """The largest absolute output difference over the parity samples (inf if NaN)."""
    worst = 0.0
    with torch.inference_mode():
        for batch in parity_samples(data_kind, reference.input_spec):
            expected: Any = reference.run_network(batch).numpy()
            actual: Any = candidate.run_network(batch).numpy()
            if expected.shape != actual.shape:
                return float("inf")
            difference = np.abs(expected.astype(np.float64) - actual.astype(np.float64))
            if not np.all(np.isfinite(difference)):
                return float("inf")
            worst = max(worst, float(difference.max(initial=0.0)))
    return worst
