"""``dlp predict MODEL --input rows.csv --output preds.csv``: a CSV through a model, in batches."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from dlp.cli.credentials import authenticated_client
from dlp.cli.output import cli_errors, fail, stdout, transfer_progress
from dlp.client import Client, ModelVersion, Prediction
from dlp.client.registry import MAX_INPUTS

PREDICTION_COLUMN = "prediction"
PROBABILITY_PREFIX = "probability_"
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})

Predictor = Callable[[list[Any]], Prediction]


@cli_errors
def predict(
    model: Annotated[str, typer.Argument(help="Model version id, or a registry name.")],
    input_path: Annotated[
        Path,
        typer.Option("--input", "-i", exists=True, dir_okay=False, help="CSV with a header row."),
    ],
    output_path: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            dir_okay=False,
            help="CSV to write: the input columns, prediction, and per-class probabilities.",
        ),
    ],
    batch_size: Annotated[
        int, typer.Option(min=1, max=MAX_INPUTS, help="Rows per request.")
    ] = MAX_INPUTS,
    text_column: Annotated[
        str | None, typer.Option(help="Column holding the text (text models).")
    ] = None,
) -> None:
    """Predict every row of a CSV with a model version (by id) or a registry name (its
    traffic split or `production` alias), a batch of rows per request."""
    with authenticated_client() as client:
        meta, send = _predictor(client, model)
        if meta.data_kind == "image":
            fail("image models take base64 images: use the Python SDK or a batch prediction")
        size = input_path.stat().st_size
        with (
            input_path.open("rb") as raw,
            io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text,
            output_path.open("w", newline="") as out,
            transfer_progress(f"predicting {input_path.name}") as bar,
        ):
            reader = csv.reader(text)
            header = next(reader, None)
            if header is None:
                fail(f"{input_path} is empty: it needs a header row")
            encode = _encoder(meta, header, text_column)
            writer = csv.writer(out)
            classes = meta.classes if meta.task == "classification" else None
            written = 0
            for rows in _batches(reader, batch_size):
                answer = send([encode(row) for row in rows])
                if written == 0:
                    classes = answer.classes or classes
                    writer.writerow(_output_header(header, classes))
                writer.writerows(_output_rows(rows, answer))
                written += len(rows)
                bar(raw.tell(), size)
            if written == 0:
                writer.writerow(_output_header(header, classes))
    stdout.print(f"wrote {written} predictions to {output_path}", markup=False)


def _predictor(client: Client, model: str) -> tuple[ModelVersion, Predictor]:
    """The model version that describes the inputs, and how to send a batch."""
    if _is_uuid(model):
        return client.models.get(model), lambda rows: client.models.predict(model, rows)
    registry = client.registry.versions(model)
    serving = registry.aliases.get("production")
    described = next((m for m in registry.versions if m.version == serving), None)
    return described or registry.versions[0], lambda rows: client.registry.predict(model, rows)


def _encoder(
    model: ModelVersion, header: Sequence[str], text_column: str | None
) -> Callable[[Sequence[str]], Any]:
    """How one CSV row becomes one input: a row object (tables) or a string (texts)."""
    position = {name: index for index, name in enumerate(header)}
    if model.data_kind == "text":
        column = text_column or str(model.config.get("text_column") or "text")
        if column not in position:
            fail(f"the input has no column {column!r} (choose one with --text-column)")
        index = position[column]
        return lambda row: row[index]
    dtypes = {str(c.get("name")): str(c.get("dtype")) for c in model.input_schema}
    columns = [(name, index, dtypes.get(name, "string")) for name, index in position.items()]
    return lambda row: {name: _value(row[i], dtype) for name, i, dtype in columns if i < len(row)}


def _value(text: str, dtype: str) -> Any:
    """A CSV cell typed as the model's column: numbers and booleans parsed, '' as missing."""
    if dtype in {"number", "integer"}:
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            return text  # the server names the row and column it cannot read
    if dtype == "boolean":
        lowered = text.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        return None if not lowered else text
    return text


def _batches(reader: Iterator[list[str]], size: int) -> Iterator[list[list[str]]]:
    batch: list[list[str]] = []
    for row in reader:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _output_header(header: Sequence[str], classes: Sequence[Any] | None) -> list[str]:
    probabilities = [f"{PROBABILITY_PREFIX}{label}" for label in classes or []]
    return [*header, PREDICTION_COLUMN, *probabilities]


def _output_rows(rows: Sequence[Sequence[str]], answer: Prediction) -> Iterator[list[Any]]:
    probabilities = answer.probabilities or [[] for _ in rows]
    for row, label, scores in zip(rows, answer.predictions, probabilities, strict=True):
        yield [*row, label, *scores]


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
