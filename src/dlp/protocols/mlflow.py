"""MLflow's scoring format (``mlflow models serve``'s ``/invocations``) in terms of dlp's models.

JSON bodies carry exactly one of ``dataframe_split``, ``dataframe_records``,
``instances`` or ``inputs``; ``text/csv`` bodies are a table with a header row.
The answer is ``{"predictions": [...]}``, as MLflow's.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from dlp.errors import UnsupportedMediaTypeError, ValidationError
from dlp.predictions.schemas import MAX_INPUTS
from dlp.registry.models import Model

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_body(model: Model, body: bytes, content_type: str) -> list[Any]:
    """The request as dlp prediction inputs (rows, texts or images)."""
    media = content_type.split(";")[0].strip().lower()
    if media == "text/csv":
        rows = _csv_rows(body)
    elif media in {"application/json", ""}:
        rows = _json_rows(body)
    else:
        raise UnsupportedMediaTypeError(
            f"content type {media!r}: send application/json or text/csv"
        )
    if not 1 <= len(rows) <= MAX_INPUTS:
        raise ValidationError(f"send between 1 and {MAX_INPUTS} rows per request, not {len(rows)}")
    if model.data_kind == "tabular":
        return [_as_record(row, model) for row in rows]
    column = model.input_schema[0]["name"]
    return [row.get(column) if isinstance(row, dict) else row for row in rows]


def _json_rows(body: bytes) -> list[Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise ValidationError(f"the body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise ValidationError(f"the body must be an object with one of {', '.join(FORMATS)}")
    present = [key for key in FORMATS if key in document]
    if len(present) != 1:
        raise ValidationError(f"give exactly one of {', '.join(FORMATS)}")
    payload = document[present[0]]
    if present[0] == "dataframe_split":
        return _split_rows(payload)
    if isinstance(payload, dict):  # "inputs" / "instances" as columns of equal length
        return _columns_to_rows(payload)
    if not isinstance(payload, list):
        raise ValidationError(f"{present[0]} must be a list of rows")
    return payload


def _split_rows(payload: Any) -> list[Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("columns"), list):
        raise ValidationError('dataframe_split needs {"columns": [...], "data": [[...], ...]}')
    columns = payload["columns"]
    data = payload.get("data")
    if not isinstance(data, list) or not all(isinstance(row, list) for row in data):
        raise ValidationError("dataframe_split data must be a list of rows (lists)")
    for index, row in enumerate(data):
        if len(row) != len(columns):
            raise ValidationError(
                f"dataframe_split row {index} has {len(row)} values for {len(columns)} columns"
            )
    return [dict(zip(columns, row, strict=True)) for row in data]


def _columns_to_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    lengths = {len(v) if isinstance(v, list) else -1 for v in payload.values()}
    if len(lengths) != 1 or -1 in lengths:
        raise ValidationError("columns given as an object must be lists of the same length")
    n_rows = lengths.pop()
    return [{name: values[i] for name, values in payload.items()} for i in range(n_rows)]


def _csv_rows(body: bytes) -> list[dict[str, Any]]:
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationError("the CSV body is not UTF-8") from exc
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise ValidationError("the CSV body needs a header row")
    return [{name: _csv_value(value) for name, value in row.items()} for row in reader]


def _csv_value(value: str | None) -> Any:
    if value is None or value == "":
        return None
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            continue
    return value


def _as_record(row: Any, model: Model) -> dict[str, Any]:
    if isinstance(row, dict):
        return row
    columns = [column["name"] for column in model.input_schema]
    if isinstance(row, list) and len(row) == len(columns):
        return dict(zip(columns, row, strict=True))
    raise ValidationError(
        f"each row must be an object or a list of {len(columns)} values ({', '.join(columns)})"
    )
