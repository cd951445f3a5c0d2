"""Business rules of int8 quantization: make a version's int8 variant, report its
accuracy change, and choose which variant serves.

The int8 graph is an extra model file (``model.int8.onnx``) whose sha256 joins the
version's ``files``, so every load checks it like the others. The report compares the
version's validation metric before and after, on the validation split re-created
from its dataset and training config (at most ``MAX_EVALUATION_ROWS`` rows).
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from dlp.auth.models import Role
from dlp.auth.service import Principal
from dlp.datasets import service as dataset_service
from dlp.db import utcnow
from dlp.errors import ConflictError
from dlp.ml.image_archive import ArchiveLimits
from dlp.registry import service
from dlp.registry.models import Model
from dlp.registry.schemas import QuantizationOut, ServingVariant
from dlp.storage import FileStore


def quantize_model_version(
    session: Session,
    store: FileStore,
    principal: Principal,
    model_id: uuid.UUID,
    *,
    limits: ArchiveLimits,
) -> Model:
    """Make (or remake) the version's int8 variant and record its report.

    409 when the version's dataset was deleted (there is no split to measure on); 422
    for one that cannot be exported to ONNX and quantized, saying why. ``limits`` are
    the image-archive limits its upload was checked against.
    """
    from dlp.ml.config import TrainingConfig
    from dlp.ml.onnx_serving import INT8_FILE
    from dlp.ml.quantize import ImageValidationSource, ValidationSource, quantize_model

    principal.require(Role.MEMBER)
    model = service.get_model_or_raise(session, principal, model_id)
    dataset = None
    if model.dataset_id is not None:
        dataset = dataset_service.get_dataset(
            session, dataset_id=model.dataset_id, organization_id=model.organization_id
        )
    if dataset is None:
        raise ConflictError(
            f"the dataset of model {model.id} was deleted: there is no validation split to "
            "measure the int8 variant on"
        )
    files = service.load_model_files(store, model)
    training = TrainingConfig.model_validate(model.config["training"])
    if model.data_kind == "image":
        with dataset_service.open_dataset_file(store, dataset) as archive:
            quantized = quantize_model(files, ImageValidationSource(archive, training, limits))
    else:
        text_column = model.config.get("text_column") if model.data_kind == "text" else None
        quantized = quantize_model(
            files,
            ValidationSource(
                table=dataset_service.load_table(store, dataset),
                target=str(model.config["target"]),
                training=training,
                text_column=None if text_column is None else str(text_column),
            ),
        )
    digests = service.store_model_files(store, model.file_prefix, {INT8_FILE: quantized.graph})
    # New dicts, not in-place edits: the JSON columns are saved when reassigned.
    model.files = {**model.files, **digests}
    model.quantization = QuantizationOut(
        mode="int8",
        metric=quantized.metric,
        before=quantized.before,
        after=quantized.after,
        change=quantized.change,
        validation_rows=quantized.validation_rows,
        size_bytes_fp32=quantized.size_bytes_fp32,
        size_bytes_int8=len(quantized.graph),
        created_at=utcnow(),
    ).model_dump(mode="json")
    return model


def set_serving_variant(
    session: Session, principal: Principal, model_id: uuid.UUID, variant: ServingVariant
) -> Model:
    """Serve the version's ``fp32`` network or its ``int8`` graph; 409 for int8 before
    the version was quantized."""
    principal.require(Role.MEMBER)
    model = service.get_model_or_raise(session, principal, model_id)
    if variant == "int8" and model.quantization is None:
        raise ConflictError(
            f"model {model.id} has no int8 variant yet: POST /api/v1/models/{model.id}/quantize"
        )
    model.serving_variant = variant
    return model
