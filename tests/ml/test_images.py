"""Image classification end to end: digits PNGs in a zip -> train_images -> predict base64."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from dlp.errors import ValidationError
from dlp.ml.architectures import build_model
from dlp.ml.artifact import TrainedModel, load_predictor, read_manifest
from dlp.ml.config import AutoModelConfig, CNNConfig, InputSpec, MLPConfig, TrainingConfig
from dlp.ml.image_archive import decode_image, image_pixels
from dlp.ml.image_encoder import ImageEncoder
from dlp.ml.images import load_image_archive, train_images
from dlp.ml.trainer import TrainingCallback, TrainingCancelled
from tests.images import (
    DigitsSplit,
    as_base64,
    digit_pixels,
    digits_archive,
    encode_image,
    zip_bytes,
)

DIGIT_CLASSES = [str(d) for d in range(10)]


@pytest.fixture(scope="module")
def digits() -> DigitsSplit:
    return digits_archive(test_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def trained(digits: DigitsSplit) -> TrainedModel:
    return train_images(
        io.BytesIO(digits.train_zip),
        model=CNNConfig(input_size=8),
        training=TrainingConfig(epochs=12, batch_size=32, learning_rate=3e-3, seed=0),
    )


def _small_archive(per_class: int = 12, side: int = 8, top_folder: str = "") -> bytes:
    pixels, labels = digit_pixels()
    files = {}
    for digit in (0, 1, 7):
        for i in np.flatnonzero(labels == digit)[:per_class]:
            image = Image.fromarray(pixels[i]).resize((side, side), Image.Resampling.NEAREST)
            files[f"{top_folder}{digit}/{i}.png"] = encode_image(np.asarray(image))
    return zip_bytes(files)


def _accuracy(predictions: list, labels: list[str]) -> float:
    return float(np.mean(np.array(predictions) == np.array(labels)))


def test_digits_held_out_accuracy(digits: DigitsSplit, trained: TrainedModel) -> None:
    predictor = load_predictor(trained.files)
    result = predictor.predict([as_base64(png) for png in digits.test_pngs])
    accuracy = _accuracy(result.predictions, digits.test_labels)
    print(f"digits CNN held-out accuracy: {accuracy:.4f}")
    assert accuracy >= 0.97
    assert predictor.classes == DIGIT_CLASSES == trained.classes
    assert result.probabilities is not None
    probabilities = np.array(result.probabilities)
    assert probabilities.shape == (len(digits.test_pngs), 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert trained.model_type == "cnn" and trained.task == "classification"
    assert trained.input_schema == [{"name": "image", "dtype": "image"}]
    assert {"val_loss", "val_accuracy", "val_f1"} <= set(trained.metrics)


def test_artifact_round_trips(digits: DigitsSplit, trained: TrainedModel) -> None:
    manifest = read_manifest(trained.files)
    assert manifest.data_kind == "image"
    assert manifest.input_spec == InputSpec(channels=1, image_size=8)
    assert manifest.model == CNNConfig(input_size=8)
    state = json.loads(trained.files["model.json"])["preprocessing"]
    assert state["kind"] == "image" and state["channels"] == 1 and len(state["std"]) == 1
    inputs = [as_base64(png) for png in digits.test_pngs[:20]]
    first, second = load_predictor(trained.files), load_predictor(dict(trained.files))
    assert first.predict(inputs) == second.predict(inputs)


def test_rgb_jpeg_of_another_size_is_converted_and_resized(
    digits: DigitsSplit, trained: TrainedModel
) -> None:
    jpegs = []
    for pixels in digits.test_pixels:
        rgb = np.stack([pixels] * 3, axis=-1)
        wide = Image.fromarray(rgb).resize((24, 16), Image.Resampling.NEAREST)
        jpegs.append(encode_image(np.asarray(wide), "JPEG", quality=95))
    encoder = ImageEncoder.from_state(read_manifest(trained.files).preprocessing)
    encoded = encoder.encode_inputs([as_base64(jpegs[0]), jpegs[1]])  # base64 text or raw bytes
    assert encoded.dtype == torch.float32 and encoded.shape == (2, 1, 8, 8)
    result = load_predictor(trained.files).predict([as_base64(jpeg) for jpeg in jpegs])
    accuracy = _accuracy(result.predictions, digits.test_labels)
    print(f"digits CNN accuracy on 24x16 RGB JPEGs: {accuracy:.4f}")
    assert accuracy >= 0.93


def test_encoder_normalises_with_training_statistics(trained: TrainedModel) -> None:
    encoder = ImageEncoder.from_state(read_manifest(trained.files).preprocessing)
    white = np.full((8, 8), 255, dtype=np.uint8)
    data_url = "data:image/png;base64," + as_base64(encode_image(white))
    (mean,), (std,) = encoder.state.mean, encoder.state.std
    assert 0.1 < mean < 0.5 and 0.1 < std < 0.5  # digits are mostly dark
    encoded = encoder.encode_inputs([data_url])
    torch.testing.assert_close(encoded, torch.full((1, 1, 8, 8), (1.0 - mean) / std))


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("%%% not base64 %%%", r"inputs\[1\] is not valid base64"),
        (as_base64(b"hello, not an image"), r"inputs\[1\] is not a readable"),
        (as_base64(encode_image(np.zeros((8, 8), np.uint8))[:40]), r"inputs\[1\]"),
        ("", r"inputs\[1\] is empty"),
        (42, r"inputs\[1\] must be a base64-encoded PNG or JPEG string"),
    ],
)
def test_bad_inputs_are_named(trained: TrainedModel, bad: object, message: str) -> None:
    good = as_base64(encode_image(np.zeros((8, 8), np.uint8)))
    with pytest.raises(ValidationError, match=message):
        load_predictor(trained.files).predict([good, bad])


def test_auto_sizes_the_network_from_the_images() -> None:
    for side, expected in ((8, 8), (21, 20)):
        model = train_images(
            io.BytesIO(_small_archive(side=side, top_folder="digits/")),
            model=AutoModelConfig(),
            training=TrainingConfig(epochs=1),
        )
        manifest = read_manifest(model.files)
        assert manifest.model.type == "cnn"
        assert isinstance(manifest.model, CNNConfig) and manifest.model.input_size == expected
        assert manifest.input_spec == InputSpec(channels=1, image_size=expected)


def test_colour_images_train_on_three_channels() -> None:
    rng = np.random.default_rng(0)
    files = {}
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        for i in range(15):
            noisy = np.clip(np.array(colour) + rng.normal(0, 20, (10, 12, 3)), 0, 255)
            files[f"{name}/{i}.jpg"] = encode_image(noisy.astype(np.uint8), "JPEG")
    trained = train_images(
        io.BytesIO(zip_bytes(files)),
        model=CNNConfig(input_size=8, channels=[8]),
        training=TrainingConfig(epochs=15, learning_rate=1e-2),
    )
    assert read_manifest(trained.files).input_spec == InputSpec(channels=3, image_size=8)
    probes = [np.full((30, 20, 3), colour, np.uint8) for colour in ((220, 0, 0), (0, 0, 220))]
    result = load_predictor(trained.files).predict([encode_image(p, "PNG") for p in probes])
    assert result.predictions == ["red", "blue"]


def test_same_seed_same_weights() -> None:
    archive = _small_archive()

    def weights() -> bytes:
        model = train_images(
            io.BytesIO(archive),
            model=CNNConfig(input_size=8, channels=[8, 16]),
            training=TrainingConfig(epochs=2, seed=7),
        )
        return model.files["model.safetensors"]

    assert weights() == weights()


def test_load_image_archive_decodes_into_uint8() -> None:
    data = load_image_archive(io.BytesIO(_small_archive(side=12, top_folder="d/")), 16)
    assert data.pixels.dtype == torch.uint8 and data.pixels.shape == (36, 1, 16, 16)
    assert sorted(set(data.labels)) == ["0", "1", "7"]


def test_requests_the_data_cannot_serve() -> None:
    with pytest.raises(ValidationError, match="does not fit image data"):
        train_images(
            io.BytesIO(_small_archive()), model=MLPConfig(), training=TrainingConfig(epochs=1)
        )
    with pytest.raises(ValidationError, match="at least 10 images"):
        train_images(
            io.BytesIO(_small_archive(per_class=2)),
            model=CNNConfig(),
            training=TrainingConfig(epochs=1),
        )


def test_cancellation_while_decoding() -> None:
    class StopNow(TrainingCallback):
        def should_stop(self) -> bool:
            return True

    with pytest.raises(TrainingCancelled):
        train_images(
            io.BytesIO(_small_archive()),
            model=CNNConfig(),
            training=TrainingConfig(epochs=1),
            callback=StopNow(),
        )


@pytest.mark.parametrize(("channels", "side"), [(1, 8), (3, 9), (3, 33)])
def test_cnn_takes_any_side(channels: int, side: int) -> None:
    config = CNNConfig(input_size=side, channels=[8, 16, 32], blocks_per_stage=2)
    network = build_model(config, InputSpec(channels=channels, image_size=side), 5).eval()
    with torch.inference_mode():
        assert network(torch.zeros(3, channels, side, side)).shape == (3, 5)


@pytest.mark.parametrize("mode", ["L", "1", "LA", "RGB", "RGBA", "P", "CMYK", "I;16"])
def test_every_pillow_mode_becomes_grey_or_rgb(mode: str) -> None:
    grey = Image.fromarray(np.full((20, 30), 128, np.uint8))
    image = (
        Image.fromarray(np.full((20, 30), 128 * 257, np.uint16))
        if mode == "I;16"
        else grey.point(lambda _: 255).convert("1")
        if mode == "1"
        else grey.convert(mode)
    )
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF")
    expected = 255 if mode == "1" else 128
    for channels in (1, 3):
        decoded = decode_image(
            buffer.getvalue(),
            name="x",
            max_pixels=10_000,
            draft=("L" if channels == 1 else "RGB", 8),
        )
        assert decoded.size == (30, 20)
        pixels = image_pixels(decoded.picture, channels=channels, size=8)
        assert pixels.shape == (channels, 8, 8) and pixels.dtype == np.uint8
        assert abs(float(pixels.mean()) - expected) <= 1
