"""What every kind of data shares: an input encoder fitted on the training split.

An encoder turns raw inputs (tabular rows, texts, encoded images) into the
tensor a network eats, describes that tensor's shape in an ``InputSpec`` (what
``build_model`` needs), and saves its fitted state as JSON inside ``model.json``.
Each data kind has one encoder class; ``load_encoder`` picks it by kind.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import pyarrow as pa
import pydantic
from pydantic import BaseModel
from torch import Tensor

from dlp.errors import ValidationError
from dlp.ml.config import DataKind, InputSpec

__all__ = ["InputEncoder", "InputSpec", "load_encoder"]


class InputEncoder(Protocol):
    """Raw inputs in, model tensors out; fitted on the training split only."""

    @property
    def input_spec(self) -> InputSpec:
        """The encoded shape, for ``build_model``."""

    @property
    def input_schema(self) -> list[dict[str, str]]:
        """What a caller must send per input (``[{"name", "dtype"}]``)."""

    def state_dict(self) -> dict[str, Any]:
        """The JSON-able fitted state."""

    def encode_inputs(self, inputs: Sequence[Any]) -> Tensor:
        """Encode prediction inputs; ValidationError names the bad input by index."""

    def encode_table(self, table: pa.Table) -> Tensor:
        """Encode every row of a table whose columns are named as ``input_schema`` says
        (batch predictions); ValidationError names a missing or unusable column."""


State = TypeVar("State", bound=BaseModel)


def parse_state(model: type[State], state: Mapping[str, Any], what: str) -> State:
    """Validate a saved encoder state; a corrupt one is a ValidationError naming ``what``."""
    try:
        return model.model_validate(state)
    except pydantic.ValidationError as exc:
        raise ValidationError(f"invalid {what} state: {exc}") from exc


def load_encoder(kind: DataKind, state: Mapping[str, Any]) -> InputEncoder:
    """Rebuild the fitted encoder of a data kind from its saved state."""
    loader = _loaders().get(kind)
    if loader is None:
        raise ValidationError(f"this dlp cannot load encoders of data kind {kind!r}")
    return loader(state)


def _loaders() -> dict[str, Callable[[Mapping[str, Any]], InputEncoder]]:
    # Imported here: each kind's module imports this one for InputSpec.
    from dlp.ml.image_encoder import ImageEncoder
    from dlp.ml.tabular import TabularPreprocessor
    from dlp.ml.text import TextEncoder

    return {
        "tabular": TabularPreprocessor.from_state,
        "image": ImageEncoder.from_state,
        "text": TextEncoder.from_state,
    }
