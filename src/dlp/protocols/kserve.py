"""The Open Inference Protocol (KServe v2) in terms of dlp's models.

A tabular model has one input per column (named as the column, shape ``[N, 1]``);
a text model one ``BYTES`` input ``text``; an image model one ``BYTES`` input
``image`` (base64 PNG/JPEG). Outputs: ``predictions`` (``BYTES`` labels or
``FP32`` values, ``[N]``) and, for classifiers, ``probabilities`` (``FP32``,
``[N, n_classes]``).
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from dlp.errors import ValidationError
from dlp.predictions.schemas import MAX_INPUTS, PredictResponse
from dlp.registry.models import Model

Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip
NUMERIC = frozenset(Datatype.__args__) - {"BYTES", "BOOL"}  # type: ignore[attr-defined]
SCHEMA_DATATYPES = {"integer": "INT64", "number": "FP32", "boolean": "BOOL"}


class TensorMetadata(BaseModel):
    """An input or output: its name, datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """``GET /v2/models/{name}[/versions/{v}]``."""

    name: str
    versions: list[str]
    platform: str = "dlp"
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class InferInput(BaseModel):
    """One input tensor of an inference request."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1)
    shape: list[int] = Field(min_length=1, max_length=2)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestedOutput(BaseModel):
    """An output the client asks for (``parameters.binary_data``: as binary data)."""

    model_config = ConfigDict(extra="allow")

    name: str
    parameters: dict[str, Any] | None = None


class InferRequest(BaseModel):
    """``POST /v2/models/{name}[/versions/{v}]/infer``."""

    model_config = ConfigDict(extra="allow")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[InferInput] = Field(min_length=1)
    outputs: list[RequestedOutput] | None = None


class InferOutput(BaseModel):
    """One output tensor of an inference response."""

    name: str
    shape: list[int]
    datatype: str
    data: list[Any]


class InferResponse(BaseModel):
    """The answer to an inference request."""

    model_name: str
    model_version: str
    id: str | None = None
    outputs: list[InferOutput]


def model_metadata(model: Model, versions: list[int]) -> ModelMetadata:
    """The v2 description of ``model``'s inputs and outputs."""
    inputs = [
        TensorMetadata(
            name=column["name"],
            datatype=SCHEMA_DATATYPES.get(column["dtype"], "BYTES"),
            shape=[-1, 1],
        )
        for column in model.input_schema
    ]
    if model.data_kind != "tabular":
        inputs = [TensorMetadata(name=inputs[0].name, datatype="BYTES", shape=[-1])]
    outputs = [
        TensorMetadata(
            name="predictions",
            datatype="BYTES" if model.task == "classification" else "FP32",
            shape=[-1],
        )
    ]
    if model.task == "classification":
        outputs.append(
            TensorMetadata(
                name="probabilities", datatype="FP32", shape=[-1, len(model.classes or [])]
            )
        )
    return ModelMetadata(
        name=model.name, versions=[str(v) for v in versions], inputs=inputs, outputs=outputs
    )


def to_inputs(model: Model, request: InferRequest) -> list[Any]:
    """The request's tensors as dlp prediction inputs (rows, texts or images)."""
    columns: dict[str, list[Any]] = {}
    for tensor in request.inputs:
        if tensor.name in columns:
            raise ValidationError(f"input {tensor.name!r} is given twice")
        columns[tensor.name] = _column_values(tensor)
    expected = [column["name"] for column in model.input_schema]
    unknown = sorted(set(columns) - set(expected))
    if unknown:
        raise ValidationError(
            f"model {model.name!r} has no input named {', '.join(map(repr, unknown))} "
            f"(inputs: {', '.join(expected)})"
        )
    missing = [name for name in expected if name not in columns]
    if missing:
        raise ValidationError(f"input {missing[0]!r} is missing (inputs: {', '.join(expected)})")
    counts = {len(values) for values in columns.values()}
    if len(counts) != 1:
        raise ValidationError("every input must hold the same number of rows")
    n_rows = counts.pop()
    if not 1 <= n_rows <= MAX_INPUTS:
        raise ValidationError(f"send between 1 and {MAX_INPUTS} rows per request, not {n_rows}")
    if model.data_kind != "tabular":
        return columns[expected[0]]
    return [{name: columns[name][row] for name in expected} for row in range(n_rows)]


def _column_values(tensor: InferInput) -> list[Any]:
    flat = _flatten(tensor.data)
    size = math.prod(tensor.shape)
    if size != len(flat):
        raise ValidationError(
            f"input {tensor.name!r}: shape {tensor.shape} holds {size} values, data has {len(flat)}"
        )
    if len(tensor.shape) == 2 and tensor.shape[1] != 1:
        raise ValidationError(f"input {tensor.name!r}: shape must be [N] or [N, 1]")
    if tensor.datatype == "BYTES":
        if not all(isinstance(value, str) for value in flat):
            raise ValidationError(f"input {tensor.name!r}: BYTES data must be strings")
    elif tensor.datatype == "BOOL":
        if not all(isinstance(value, bool) for value in flat):
            raise ValidationError(f"input {tensor.name!r}: BOOL data must be true or false")
    elif not all(_is_number(value) for value in flat):
        raise ValidationError(f"input {tensor.name!r}: {tensor.datatype} data must be numbers")
    return flat


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _flatten(data: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in data:
        if isinstance(item, list):
            flat.extend(_flatten(item))
        else:
            flat.append(item)
    return flat


def to_response(model: Model, answer: PredictResponse, request: InferRequest) -> InferResponse:
    """dlp's answer as v2 output tensors (only those asked for, when the request names some)."""
    n_rows = len(answer.predictions)
    outputs = {
        "predictions": InferOutput(
            name="predictions",
            shape=[n_rows],
            datatype="BYTES" if model.task == "classification" else "FP32",
            data=[str(p) for p in answer.predictions]
            if model.task == "classification"
            else answer.predictions,
        )
    }
    if answer.probabilities is not None:
        n_classes = len(answer.probabilities[0]) if n_rows else 0
        outputs["probabilities"] = InferOutput(
            name="probabilities",
            shape=[n_rows, n_classes],
            datatype="FP32",
            data=[value for row in answer.probabilities for value in row],
        )
    wanted = [output.name for output in request.outputs or []] or list(outputs)
    unknown = [name for name in wanted if name not in outputs]
    if unknown:
        raise ValidationError(
            f"model {model.name!r} has no output named {unknown[0]!r} "
            f"(outputs: {', '.join(outputs)})"
        )
    return InferResponse(
        model_name=model.name,
        model_version=str(model.version),
        id=request.id,
        outputs=[outputs[name] for name in wanted],
    )


# The binary tensor data extension: a JSON header of ``Inference-Header-Content-Length``
# bytes, then each binary tensor's raw little-endian values (BYTES: 4-byte length, bytes).
BINARY_HEADER = "Inference-Header-Content-Length"
NUMPY_TYPES = {
    "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
    "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
    "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
}  # fmt: skip


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """An inference request from JSON, or from JSON plus binary tensor data."""
    try:
        size = int(header_length) if header_length is not None else len(body)
    except ValueError as exc:
        raise ValidationError(f"{BINARY_HEADER} must be a number of bytes") from exc
    if not 0 < size <= len(body):
        raise ValidationError(f"{BINARY_HEADER} {size} does not fit a body of {len(body)} bytes")
    try:
        document = json.loads(body[:size])
    except ValueError as exc:
        raise ValidationError(f"the inference request is not JSON: {exc}") from exc
    if isinstance(document, dict):
        _attach_binary_data(document, memoryview(body)[size:])
    try:
        return InferRequest.model_validate(document)
    except PydanticValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()[:3]
        ]
        raise ValidationError(f"not an inference request: {'; '.join(problems)}") from exc


def _attach_binary_data(document: dict[str, Any], binary: memoryview) -> None:
    offset = 0
    inputs = document.get("inputs")
    # Anything but a list of objects is left to the schema, which refuses it clearly.
    tensors = [t for t in inputs if isinstance(t, dict)] if isinstance(inputs, list) else []
    for tensor in tensors:
        parameters = tensor.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise ValidationError(f"input {tensor.get('name')!r}: binary_data_size out of range")
        chunk = bytes(binary[offset : offset + size])
        offset += size
        tensor["data"] = _decode_binary(chunk, str(tensor.get("datatype")), tensor.get("name"))
    if offset != len(binary):
        raise ValidationError("the binary tensor data does not match the inputs' sizes")


def _decode_binary(chunk: bytes, datatype: str, name: Any) -> list[Any]:
    if datatype == "BYTES":
        values, offset = [], 0
        while offset < len(chunk):
            if offset + 4 > len(chunk):
                raise ValidationError(f"input {name!r}: truncated BYTES element")
            length = int.from_bytes(chunk[offset : offset + 4], "little")
            values.append(chunk[offset + 4 : offset + 4 + length].decode("utf-8", "replace"))
            offset += 4 + length
        return values
    if datatype not in NUMPY_TYPES:
        raise ValidationError(f"input {name!r}: unknown datatype {datatype!r}")
    try:
        return np.frombuffer(chunk, dtype=NUMPY_TYPES[datatype]).tolist()  # type: ignore[no-any-return]
    except ValueError as exc:
        raise ValidationError(f"input {name!r}: {exc}") from exc


def wants_binary(request: InferRequest) -> set[str]:
    """Outputs to send as binary data (per output, or all via ``binary_data_output``)."""
    every = bool((request.parameters or {}).get("binary_data_output"))
    chosen = {
        output.name
        for output in request.outputs or []
        if (output.parameters or {}).get("binary_data")
    }
    return {"predictions", "probabilities"} if every and not request.outputs else chosen


def encode_response(response: InferResponse, binary: set[str]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary data follows it."""
    blobs: list[bytes] = []
    outputs = []
    for output in response.outputs:
        entry = output.model_dump()
        if output.name in binary:
            blob = _encode_binary(output)
            del entry["data"]
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        outputs.append(entry)
    header = json.dumps({**response.model_dump(exclude={"outputs"}), "outputs": outputs}).encode()
    if not blobs:
        return header, None
    return header + b"".join(blobs), len(header)


def _encode_binary(output: InferOutput) -> bytes:
    if output.datatype == "BYTES":
        parts = []
        for value in output.data:
            data = str(value).encode()
            parts.append(len(data).to_bytes(4, "little") + data)
        return b"".join(parts)
    return np.asarray(output.data, dtype=NUMPY_TYPES[output.datatype]).tobytes()
