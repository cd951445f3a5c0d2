"""Export a trained network to ONNX or TorchScript, with its manifest embedded.

The exported graph takes the *encoded* input (what the model's encoder produces:
the feature matrix, the image tensor or the token ids); ``model.json`` travels
inside the file (ONNX metadata ``dlp.manifest``, TorchScript extra file
``model.json``) so the preprocessing that produces that input is never lost.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from typing import Literal

import onnx
import torch
from torch import Tensor

from dlp.ml.artifact import MANIFEST_FILE, load_predictor, read_manifest
from dlp.ml.config import DataKind, InputSpec

ExportFormat = Literal["onnx", "torchscript"]
ONNX_OPSET = 17
EXAMPLE_TEXT_LENGTH = 16


def example_input(data_kind: DataKind, spec: InputSpec, batch: int = 2) -> Tensor:
    """A dummy encoded batch of the right shape and dtype for tracing."""
    if data_kind == "image":
        return torch.zeros(batch, spec.channels, spec.image_size, spec.image_size)
    if data_kind == "text":
        return torch.ones(batch, EXAMPLE_TEXT_LENGTH, dtype=torch.int64)
    return torch.zeros(batch, spec.n_features)


def export_model(files: Mapping[str, bytes], export_format: ExportFormat) -> bytes:
    """The network of a model artifact as ONNX or TorchScript bytes."""
    manifest = read_manifest(files)
    predictor = load_predictor(files)
    network = predictor.network.eval()
    example = example_input(manifest.data_kind, manifest.input_spec)
    if export_format == "torchscript":
        # torch.jit is deprecated upstream but TorchScript is still what many
        # serving stacks load; the contract offers it, so silence the notice.
        buffer = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            traced = torch.jit.trace(network, example)  # type: ignore[no-untyped-call]
            torch.jit.save(traced, buffer, _extra_files={MANIFEST_FILE: files[MANIFEST_FILE]})
        return buffer.getvalue()
    dynamic_axes = {"inputs": {0: "batch"}, "outputs": {0: "batch"}}
    if manifest.data_kind == "text":
        dynamic_axes["inputs"][1] = "tokens"
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            network,
            (example,),
            buffer,  # type: ignore[arg-type]  # a file object works; the stub says path
            dynamo=False,
            input_names=["inputs"],
            output_names=["outputs"],
            dynamic_axes=dynamic_axes,
            opset_version=ONNX_OPSET,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    entry = graph.metadata_props.add()
    entry.key, entry.value = "dlp.manifest", files[MANIFEST_FILE].decode()
    return bytes(graph.SerializeToString())
