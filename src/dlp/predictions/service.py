"""Online predictions: a bounded in-process cache of loaded models, and inference."""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from typing import TYPE_CHECKING

from prometheus_client import Counter

from dlp.predictions.schemas import PredictRequest, PredictResponse
from dlp.registry import service as registry_service
from dlp.registry.models import Model
from dlp.storage import FileStore

if TYPE_CHECKING:
    from dlp.ml.inference import Predictor


class ModelCache:
    """Least-recently-used loaded models, keyed by model version id."""

    def __init__(self, capacity: int, lookups: Counter) -> None:
        self.capacity = capacity
        self.lookups = lookups
        self._items: OrderedDict[uuid.UUID, Predictor] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_load(self, model: Model, store: FileStore) -> Predictor:
        """The loaded model, reading and checking its files on a miss."""
        with self._lock:
            predictor = self._items.get(model.id)
            if predictor is not None:
                self._items.move_to_end(model.id)
                self.lookups.labels("hit").inc()
                return predictor
        self.lookups.labels("miss").inc()
        from dlp.ml.artifact import load_predictor

        predictor = load_predictor(registry_service.load_model_files(store, model))
        with self._lock:
            self._items[model.id] = predictor
            self._items.move_to_end(model.id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return predictor

    def discard(self, model_id: uuid.UUID) -> None:
        """Forget a model (after it was deleted)."""
        with self._lock:
            self._items.pop(model_id, None)


def predict(
    cache: ModelCache, store: FileStore, model: Model, request: PredictRequest
) -> PredictResponse:
    """Run the model on the request's inputs."""
    predictor = cache.get_or_load(model, store)
    prediction = predictor.predict(request.inputs)
    return PredictResponse(
        model_id=model.id,
        model_version=model.version,
        predictions=prediction.predictions,
        probabilities=prediction.probabilities,
        classes=model.classes,
    )
