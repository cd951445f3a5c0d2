"""Text data: ``TextEncoder`` turns texts into padded id rows, ``train_text`` trains on them.

Ids: 0 pads, 1 is an unknown word, 2.. are the training split's most frequent words,
and (bag variant only) hashed word n-grams fill ``buckets`` ids after the words. A
row holds a text's first ``max_length`` words, then its n-grams; its width is the
longest row of the batch. The encoder's state is JSON: the vocabulary is a list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from dlp.errors import ValidationError
from dlp.ml.artifact import MIN_ROWS, RunOptions, TrainedModel, fit_target, package_model
from dlp.ml.config import (
    TASKS,
    InputSpec,
    ModelConfig,
    Task,
    TextConfig,
    TrainingConfig,
    resolve_model_config,
)
from dlp.ml.encoders import parse_state
from dlp.ml.tabular_values import decode_dictionary
from dlp.ml.targets import (
    usable_target_rows,
)
from dlp.ml.text_models import PAD_ID
from dlp.ml.text_tokens import IntArray, Texts, distinct, fnv1a, ngram_buckets, tokenize
from dlp.ml.trainer import TensorSplit, TrainingCallback

__all__ = ["TextEncoder", "TextEncoderState", "train_text"]

UNKNOWN_ID: Final = 1
FIRST_WORD_ID: Final = 2
STATE_VERSION: Final = 1
INPUT_NAME: Final = "text"


class TextEncoderState(BaseModel):
    """The JSON form of a fitted ``TextEncoder``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = STATE_VERSION
    text_column: str = Field(description="The training table's text column.")
    vocabulary: list[str] = Field(description="Known words, most frequent first; id = index + 2.")
    ngrams: int = Field(ge=1, le=3, description="Hashed word n-grams up to this length.")
    buckets: int = Field(ge=0, description="Hash buckets for n-grams (0 when ngrams is 1).")
    max_length: int = Field(ge=1, description="Words kept per text.")


class TextEncoder:
    """Texts in, NxL int64 id matrices out; fitted on the training split only."""

    def __init__(self, state: TextEncoderState) -> None:
        if len(set(state.vocabulary)) != len(state.vocabulary):
            raise ValidationError("text preprocessing state repeats a vocabulary word")
        if (state.ngrams > 1) != (state.buckets > 0):
            raise ValidationError("text preprocessing state needs buckets exactly when ngrams > 1")
        self._state = state
        self._ids = {word: index + FIRST_WORD_ID for index, word in enumerate(state.vocabulary)}

    @classmethod
    def fit(cls, texts: Texts, *, text_column: str, config: TextConfig) -> TextEncoder:
        """Learn the ``config.vocab_size`` most frequent words of the training texts.

        Only the bag variant hashes n-grams: the transformer reads word order itself.
        """
        tokens = tokenize(texts, max_tokens=config.max_length)
        counted = pc.value_counts(tokens.words)
        ranked = pa.table(
            {"word": counted.field("values"), "count": counted.field("counts")}
        ).sort_by([("count", "descending"), ("word", "ascending")])
        vocabulary = ranked.column("word").slice(0, config.vocab_size).to_pylist()
        ngrams = config.ngrams if config.variant == "bag" else 1
        state = TextEncoderState(
            text_column=text_column,
            vocabulary=vocabulary,
            ngrams=ngrams,
            buckets=config.buckets if ngrams > 1 else 0,
            max_length=config.max_length,
        )
        return cls(state)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TextEncoder:
        """Rebuild a fitted encoder from ``state_dict()``; ValidationError if corrupt."""
        return cls(parse_state(TextEncoderState, state, "text preprocessing"))

    def state_dict(self) -> dict[str, Any]:
        """The JSON-able state of this encoder."""
        return self._state.model_dump(mode="json")

    @property
    def state(self) -> TextEncoderState:
        """The validated state model."""
        return self._state

    @property
    def input_spec(self) -> InputSpec:
        """The size of the id space (padding, unknown, words, n-gram buckets)."""
        return InputSpec(vocab_size=FIRST_WORD_ID + len(self._ids) + self._state.buckets)

    @property
    def input_schema(self) -> list[dict[str, str]]:
        """One string per input."""
        return [{"name": INPUT_NAME, "dtype": "string"}]

    def encode_inputs(self, inputs: Sequence[Any]) -> Tensor:
        """Prediction texts to the id matrix; ValidationError names a non-string input."""
        for index, value in enumerate(inputs):
            if not isinstance(value, str):
                shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
                raise ValidationError(
                    f"inputs[{index}] must be a string for a text model, got {shown}"
                )
        return self.encode(list(inputs))

    def encode_table(self, table: pa.Table) -> Tensor:
        """The id matrix of a table's ``text`` column."""
        if INPUT_NAME not in table.column_names:
            raise ValidationError(f"the data is missing column {INPUT_NAME!r}")
        column = table.column(INPUT_NAME)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            raise ValidationError(f"column {INPUT_NAME!r} holds {column.type} values, not text")
        return self.encode(column)

    def encode(self, texts: Texts) -> Tensor:
        """Id matrix of texts (None counts as empty); every row has at least one id."""
        state = self._state
        tokens = tokenize(texts, max_tokens=state.max_length)
        lengths = tokens.lengths
        positions = tokens.positions
        owners = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        # Each distinct token is looked up (and hashed) once: a batch repeats most words.
        uniques, indices = distinct(tokens.words)
        lookup = self._ids.get
        known = [lookup(word, UNKNOWN_ID) for word in uniques.to_pylist()]
        word_ids = np.array(known, dtype=np.int64)[indices]
        rows, columns, values = [owners], [positions], [word_ids]
        row_lengths = lengths.copy()
        if state.ngrams > 1:
            hashes = fnv1a(uniques)[indices]
            first_bucket = FIRST_WORD_ID + len(self._ids)
            for n in range(2, state.ngrams + 1):
                ends, buckets = ngram_buckets(hashes, positions, n=n, buckets=state.buckets)
                owner = owners[ends]
                rows.append(owner)
                columns.append(row_lengths[owner] + positions[ends] - (n - 1))
                values.append(buckets + first_bucket)
                row_lengths += np.maximum(lengths - (n - 1), 0)
        return torch.from_numpy(_pad(rows, columns, values, row_lengths))


def train_text(
    table: pa.Table,
    *,
    text_column: str,
    target: str,
    task: Task,
    model: ModelConfig,
    training: TrainingConfig,
    callback: TrainingCallback | None = None,
    run: RunOptions | None = None,
) -> TrainedModel:
    """Fit a text encoder and a text model on ``table`` to predict ``target`` from texts.

    Rows missing the text or the target are left out. Raises ValidationError when the
    data cannot serve the request, TrainingError when training diverges, and
    ``TrainingCancelled`` when the callback asks to stop.
    """
    _check_columns(table, text_column=text_column, target=target, task=task)
    resolved = resolve_model_config(model, data_kind="text", spec=InputSpec(), n_rows=len(table))
    assert isinstance(resolved, TextConfig)  # the only family FAMILIES_BY_KIND allows for text
    texts = decode_dictionary(table.column(text_column))
    usable = usable_target_rows(table.column(target), name=target, task=task)
    usable &= texts.is_valid().to_numpy(zero_copy_only=False)
    n_usable = int(usable.sum())
    if n_usable < MIN_ROWS:
        raise ValidationError(
            f"training needs at least {MIN_ROWS} rows with both a text in {text_column!r} and "
            f"a value in {target!r}; the dataset has {n_usable}"
        )
    if n_usable < table.num_rows:
        mask = pa.array(usable)
        table, texts = table.filter(mask), texts.filter(mask)

    target_encoder, objective, targets, train_rows, val_rows = fit_target(
        table, target=target, task=task, training=training
    )
    train_texts, val_texts = texts.take(pa.array(train_rows)), texts.take(pa.array(val_rows))
    encoder = TextEncoder.fit(train_texts, text_column=text_column, config=resolved)
    return package_model(
        data_kind="text",
        task=task,
        model=resolved,
        training=training,
        encoder=encoder,
        target=target_encoder,
        objective=objective,
        train=TensorSplit(encoder.encode(train_texts), targets[torch.from_numpy(train_rows)]),
        validation=TensorSplit(encoder.encode(val_texts), targets[torch.from_numpy(val_rows)]),
        callback=callback,
        run=run,
    )


def _pad(
    rows: list[IntArray], columns: list[IntArray], values: list[IntArray], row_lengths: IntArray
) -> IntArray:
    """Scatter ids into a zero-padded matrix; an empty text gets one unknown id."""
    width = max(int(row_lengths.max(initial=0)), 1)
    matrix = np.full((len(row_lengths), width), PAD_ID, dtype=np.int64)
    matrix[np.concatenate(rows), np.concatenate(columns)] = np.concatenate(values)
    matrix[row_lengths == 0, 0] = UNKNOWN_ID
    return matrix


def _check_columns(table: pa.Table, *, text_column: str, target: str, task: str) -> None:
    if task not in TASKS:
        raise ValidationError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    names = table.column_names
    for role, name in (("text column", text_column), ("target column", target)):
        if name not in names:
            shown = ", ".join(repr(n) for n in names[:20])
            more = f" and {len(names) - 20} more" if len(names) > 20 else ""
            raise ValidationError(f"{role} {name!r} is not in the dataset (columns: {shown}{more})")
        if names.count(name) > 1:
            raise ValidationError(f"the dataset has two columns named {name!r}")
    if text_column == target:
        raise ValidationError(f"the text column and the target are both {target!r}")
    data_type = decode_dictionary(table.column(text_column)).type
    if not (pa.types.is_string(data_type) or pa.types.is_large_string(data_type)):
        raise ValidationError(
            f"text column {text_column!r} must hold strings, but it is of type {data_type}"
        )
