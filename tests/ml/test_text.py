"""Text data end to end: the encoder, both text families, and train_text on real reviews."""

from __future__ import annotations

import io
import json
import pathlib
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from dlp.errors import ValidationError
from dlp.ml.artifact import TrainedModel, load_predictor, read_manifest
from dlp.ml.config import (
    AutoModelConfig,
    InputSpec,
    TextConfig,
    TrainingConfig,
    model_config_adapter,
)
from dlp.ml.split import split_train_validation
from dlp.ml.targets import ClassificationTarget
from dlp.ml.text import FIRST_WORD_ID, UNKNOWN_ID, TextEncoder, train_text
from dlp.ml.text_models import build_text_model
from dlp.ml.text_tokens import fnv1a, tokenize

REVIEWS = pathlib.Path(__file__).parents[1] / "data" / "rotten_tomatoes_snippets.csv.gz"
TEXT_TRAINING = TrainingConfig(
    epochs=40,
    batch_size=256,
    learning_rate=0.01,
    early_stopping_patience=3,
    validation_fraction=0.1,
)
"""Large batches keep dense Adam steps few; a tenth for validation leaves more to learn from."""


@dataclass(frozen=True)
class Reviews:
    """The review snippets split 80/20 (stratified, seed 0): a training table and held-out rows."""

    train: pa.Table
    test_texts: list[str]
    test_labels: np.ndarray


@pytest.fixture(scope="module")
def reviews() -> Reviews:
    table = pa_csv.read_csv(REVIEWS)
    codes = ClassificationTarget.fit(table.column("label"), name="label").encode(
        table.column("label"), name="label"
    )
    train, test = split_train_validation(table.num_rows, fraction=0.2, seed=0, strata=codes)
    held_out = table.take(pa.array(test))
    return Reviews(
        train=table.take(pa.array(train)),
        test_texts=held_out.column("text").to_pylist(),
        test_labels=np.array(held_out.column("label").to_pylist(), dtype=object),
    )


@pytest.fixture(scope="module")
def bag_model(reviews: Reviews) -> TrainedModel:
    return train_text(
        reviews.train,
        text_column="text",
        target="label",
        task="classification",
        model=model_config_adapter.validate_python({"type": "text"}),
        training=TEXT_TRAINING,
    )


def _accuracy(predicted: list[object], expected: np.ndarray) -> float:
    return float(np.mean(np.array(predicted, dtype=object) == expected))


def test_bag_matches_tfidf_logistic_regression(reviews: Reviews, bag_model: TrainedModel) -> None:
    train_texts = reviews.train.column("text").to_pylist()
    train_labels = reviews.train.column("label").to_pylist()
    with threadpool_limits(limits=1):
        vectorizer = TfidfVectorizer()
        baseline = LogisticRegression(max_iter=1000).fit(
            vectorizer.fit_transform(train_texts), train_labels
        )
        expected = baseline.predict(vectorizer.transform(reviews.test_texts))
    baseline_accuracy = _accuracy(list(expected), reviews.test_labels)

    predictor = load_predictor(bag_model.files)
    accuracy = _accuracy(predictor.predict(reviews.test_texts).predictions, reviews.test_labels)
    print(f"held-out accuracy: dlp bag {accuracy:.4f}, tf-idf + logistic {baseline_accuracy:.4f}")
    assert accuracy >= baseline_accuracy
    assert bag_model.model_type == "text"
    assert bag_model.data_kind == "text"
    assert bag_model.classes == ["fresh", "rotten"]
    assert bag_model.input_schema == [{"name": "text", "dtype": "string"}]


def test_round_trip_reproduces_the_kept_epoch(reviews: Reviews, bag_model: TrainedModel) -> None:
    manifest = read_manifest(bag_model.files)
    assert manifest.data_kind == "text"
    assert isinstance(manifest.preprocessing["vocabulary"], list)
    json.dumps(manifest.preprocessing)  # JSON all the way down

    # The loaded model scores the validation rows exactly as the kept epoch did.
    codes = ClassificationTarget.fit(reviews.train.column("label"), name="label").encode(
        reviews.train.column("label"), name="label"
    )
    _, val_rows = split_train_validation(
        reviews.train.num_rows,
        fraction=TEXT_TRAINING.validation_fraction,
        seed=TEXT_TRAINING.seed,
        strata=codes,
    )
    validation = reviews.train.take(pa.array(val_rows))
    first = load_predictor(bag_model.files)
    result = first.predict(validation.column("text").to_pylist())
    expected_labels = np.array(validation.column("label").to_pylist(), dtype=object)
    assert _accuracy(result.predictions, expected_labels) == pytest.approx(
        bag_model.metrics["val_accuracy"], abs=1e-9
    )

    copied = {name: bytes(bytearray(data)) for name, data in bag_model.files.items()}
    again = load_predictor(copied).predict(reviews.test_texts[:200])
    once = first.predict(reviews.test_texts[:200])
    assert again.predictions == once.predictions
    assert again.probabilities == once.probabilities


def test_transformer_trains_and_predicts(reviews: Reviews) -> None:
    config = TextConfig(
        variant="transformer", embedding_dim=32, layers=1, heads=4, max_length=48, ngrams=2
    )
    trained = train_text(
        reviews.train.slice(0, 1200),
        text_column="text",
        target="label",
        task="classification",
        model=config,
        training=TrainingConfig(epochs=2, batch_size=64, learning_rate=3e-3),
    )
    assert trained.epochs_run == 2
    manifest = read_manifest(trained.files)
    # The transformer reads word order itself: no hashed n-grams even when asked for.
    assert (manifest.preprocessing["ngrams"], manifest.preprocessing["buckets"]) == (1, 0)
    predictor = load_predictor(trained.files)
    result = predictor.predict([*reviews.test_texts[:50], "", "!!!"])
    assert set(result.predictions) <= {"fresh", "rotten"}
    assert result.probabilities is not None
    np.testing.assert_allclose(np.array(result.probabilities).sum(axis=1), 1.0, rtol=1e-5)
    assert load_predictor(trained.files).predict(["a fine film"]) == predictor.predict(
        ["a fine film"]
    )


def test_encoder_learns_only_the_training_split() -> None:
    n_rows = 60
    table = pa.table(
        {
            "review": [f"{'good' if i % 2 else 'bad'} marker{i}" for i in range(n_rows)],
            "label": ["pos" if i % 2 else "neg" for i in range(n_rows)],
        }
    )
    training = TrainingConfig(epochs=1, validation_fraction=0.25, seed=3)
    trained = train_text(
        table,
        text_column="review",
        target="label",
        task="classification",
        model=TextConfig(),
        training=training,
    )
    encoder = TextEncoder.from_state(read_manifest(trained.files).preprocessing)
    codes = np.array([i % 2 for i in range(n_rows)], dtype=np.int64)  # classes: neg, pos
    train_rows, val_rows = split_train_validation(n_rows, fraction=0.25, seed=3, strata=codes)
    vocabulary = set(encoder.state.vocabulary)
    assert {f"marker{i}" for i in train_rows} <= vocabulary
    assert not {f"marker{i}" for i in val_rows} & vocabulary
    ids = encoder.encode_inputs([f"marker{val_rows[0]}", f"marker{train_rows[0]}"])
    assert ids[0].tolist() == [UNKNOWN_ID]
    assert ids[1, 0] >= FIRST_WORD_ID


def test_tokenizer_lowercases_splits_punctuation_and_truncates() -> None:
    tokens = tokenize(
        pa.array(["  Great, GREAT film!  ", None, "", "Café—naïve 3.5 x_y"]), max_tokens=4
    )
    assert tokens.words.to_pylist() == [
        *["great", ",", "great", "film"],
        *["café", "—", "naïve", "3"],
    ]
    assert tokens.offsets.tolist() == [0, 4, 4, 4, 8]


def test_fnv1a_is_the_published_stable_hash() -> None:
    hashes = fnv1a(pa.array(["", "a", "foobar"]))
    assert [int(h) for h in hashes] == [0xCBF29CE484222325, 0xAF63DC4C8601EC8C, 0x85944171F73967E8]


def test_encoder_rows_words_ngrams_and_padding() -> None:
    config = TextConfig(ngrams=2, buckets=1024, vocab_size=100, max_length=8)
    encoder = TextEncoder.fit(
        pa.array(["the plot is thin", "the cast is great"]), text_column="t", config=config
    )
    spec = encoder.input_spec
    assert spec == InputSpec(vocab_size=FIRST_WORD_ID + 6 + 1024)
    ids = encoder.encode_inputs(["the cast", "is thin, the cast", "", "unseen"])
    assert ids.dtype == torch.int64
    assert ids.shape == (4, 5 + 4)  # the longest row: five words and four bigrams
    words, bigrams = ids[:, :2], ids[0, 2]
    assert int(bigrams) >= FIRST_WORD_ID + 6
    assert int(ids.max()) < spec.vocab_size
    assert int(ids[1, 5 + 3]) == int(bigrams)  # "the cast" hashes alike in every text
    assert ids[0, 3:].tolist() == [0] * 6
    assert ids[2].tolist() == [UNKNOWN_ID] + [0] * 8
    assert ids[3].tolist() == [UNKNOWN_ID] + [0] * 8
    assert words[0].tolist() == ids[1, 3:5].tolist()
    long_text = " ".join(["the"] * 20)
    assert encoder.encode_inputs([long_text]).shape == (1, 8 + 7)


def test_encoder_state_is_json_and_checked() -> None:
    encoder = TextEncoder.fit(
        pa.array(["one two", "two three"]), text_column="t", config=TextConfig()
    )
    restored = TextEncoder.from_state(json.loads(json.dumps(encoder.state_dict())))
    texts = ["two one", "three four"]
    assert torch.equal(restored.encode_inputs(texts), encoder.encode_inputs(texts))
    broken = encoder.state_dict() | {"vocabulary": ["two", "two"]}
    with pytest.raises(ValidationError, match="repeats"):
        TextEncoder.from_state(broken)
    with pytest.raises(ValidationError, match="invalid text preprocessing state"):
        TextEncoder.from_state({"version": 1})


def test_encode_inputs_names_a_non_string() -> None:
    encoder = TextEncoder.fit(pa.array(["fine"]), text_column="t", config=TextConfig())
    with pytest.raises(ValidationError, match=r"inputs\[1\] must be a string"):
        encoder.encode_inputs(["fine", 3])
    with pytest.raises(ValidationError, match=r"inputs\[0\]"):
        encoder.encode_inputs([{"text": "fine"}])


@pytest.mark.parametrize("variant", ["bag", "transformer"])
def test_models_ignore_padding(variant: str) -> None:
    config = TextConfig(variant=variant, embedding_dim=16, heads=2, layers=1, max_length=16)
    torch.manual_seed(0)
    network = build_text_model(config, InputSpec(vocab_size=50), 3).eval()
    short = torch.tensor([[5, 7, 9]])
    padded = torch.tensor([[5, 7, 9, 0, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(network(short), network(padded))


def _small_table() -> pa.Table:
    return pa.table({"text": ["good film"] * 6 + ["bad film"] * 6, "label": ["a"] * 6 + ["b"] * 6})


def test_missing_text_column_is_named() -> None:
    with pytest.raises(ValidationError, match="text column 'body' is not in the dataset"):
        train_text(
            _small_table(),
            text_column="body",
            target="label",
            task="classification",
            model=TextConfig(),
            training=TrainingConfig(epochs=1),
        )


def test_missing_target_is_named() -> None:
    with pytest.raises(ValidationError, match="target column 'stars' is not in the dataset"):
        train_text(
            _small_table(),
            text_column="text",
            target="stars",
            task="classification",
            model=TextConfig(),
            training=TrainingConfig(epochs=1),
        )


def test_numeric_text_column_is_rejected() -> None:
    table = _small_table().append_column("score", pa.array(range(12)))
    with pytest.raises(ValidationError, match="text column 'score' must hold strings"):
        train_text(
            table,
            text_column="score",
            target="label",
            task="classification",
            model=TextConfig(),
            training=TrainingConfig(epochs=1),
        )


def test_image_model_type_is_rejected_for_text() -> None:
    with pytest.raises(ValidationError, match="does not fit text data"):
        train_text(
            _small_table(),
            text_column="text",
            target="label",
            task="classification",
            model=model_config_adapter.validate_python({"type": "cnn"}),
            training=TrainingConfig(epochs=1),
        )


def test_rows_without_text_are_left_out() -> None:
    texts: list[str | None] = [None if i % 2 else "fine film" for i in range(16)]
    table = pa.table({"text": pa.array(texts, type=pa.string()), "label": ["a", "b"] * 8})
    with pytest.raises(ValidationError, match="the dataset has 8"):
        train_text(
            table,
            text_column="text",
            target="label",
            task="classification",
            model=TextConfig(),
            training=TrainingConfig(epochs=1),
        )


def test_regression_on_text_with_auto_model() -> None:
    texts = [" ".join(["great"] * k + ["film"]) for k in range(1, 41)]
    table = pa.table({"text": texts, "stars": [float(k) for k in range(1, 41)]})
    trained = train_text(
        table,
        text_column="text",
        target="stars",
        task="regression",
        model=AutoModelConfig(),
        training=TrainingConfig(epochs=3),
    )
    assert trained.model_type == "text"
    predictions = load_predictor(trained.files).predict(["great great film"]).predictions
    assert isinstance(predictions[0], float)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit, still offered
@pytest.mark.parametrize("variant", ["bag", "transformer"])
def test_exports_agree_with_the_model_at_any_length(reviews: Reviews, variant: str) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    from dlp.ml.export import export_model

    config = TextConfig(variant=variant, layers=1, max_length=24)
    trained = train_text(
        reviews.train.slice(0, 300),
        text_column="text",
        target="label",
        task="classification",
        model=config,
        training=TrainingConfig(epochs=1),
    )
    predictor = load_predictor(trained.files)
    encoder = TextEncoder.from_state(read_manifest(trained.files).preprocessing)
    ids = encoder.encode_inputs(["dull", "a fine film", " ".join(reviews.test_texts[:3])])
    with torch.no_grad():
        expected = predictor.network(ids).numpy()
    session = onnxruntime.InferenceSession(export_model(trained.files, "onnx"))
    (onnx_outputs,) = session.run(None, {"inputs": ids.numpy()})
    np.testing.assert_allclose(onnx_outputs, expected, atol=1e-5)
    scripted = torch.jit.load(io.BytesIO(export_model(trained.files, "torchscript")))
    torch.testing.assert_close(scripted(ids), torch.from_numpy(expected))
