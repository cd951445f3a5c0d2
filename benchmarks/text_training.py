"""Is dlp's text bag model as quick and as accurate as TF-IDF + logistic regression?

Both learn from the same stratified 80/20 split of the 12,752 Rotten Tomatoes
review snippets in ``tests/data`` (10,201 training documents, 2,551 held out; the
split ``tests/ml/test_text.py`` uses):
(a) scikit-learn's ``TfidfVectorizer`` + ``LogisticRegression``, (b) ``train_text``
with the default bag model, from the Arrow table to the packaged artifact. Fit time
is the median of ``--repeats`` runs, one thread each (two threads collapse when
anything else uses a core). Ends with one line:
``text_training: fit_time_ratio=R accuracy_delta=D`` (dlp / baseline; dlp - baseline).

    .venv/bin/python benchmarks/text_training.py [--repeats 3] [--seed 0] [--model JSON]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

from dlp.ml.artifact import TrainedModel, load_predictor  # noqa: E402
from dlp.ml.config import TextConfig, TrainingConfig  # noqa: E402
from dlp.ml.split import split_train_validation  # noqa: E402
from dlp.ml.targets import ClassificationTarget  # noqa: E402
from dlp.ml.text import train_text  # noqa: E402

DATA = ROOT / "tests" / "data" / "rotten_tomatoes_snippets.csv.gz"
TEXT_TRAINING = TrainingConfig(
    epochs=40,
    batch_size=256,
    learning_rate=0.01,
    early_stopping_patience=3,
    validation_fraction=0.1,
)
"""The settings the text tests use: large batches keep dense Adam steps few."""

T = TypeVar("T")


def timed(function: Callable[[], T], repeats: int) -> tuple[T, float]:
    """The last result and the median wall time of ``repeats`` calls."""
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    assert result is not None
    return result, statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--model", default="{}", help="TextConfig fields as JSON, e.g. '{\"ngrams\": 2}'"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)

    table = pa_csv.read_csv(DATA)
    texts = np.array(table.column("text").to_pylist(), dtype=object)
    labels = np.array(table.column("label").to_pylist(), dtype=object)
    strata = ClassificationTarget.fit(table.column("label"), name="label").encode(
        table.column("label"), name="label"
    )
    train, test = split_train_validation(len(labels), fraction=0.2, seed=args.seed, strata=strata)
    print(f"{len(train)} training and {len(test)} held-out documents, {args.repeats} repeats")

    def fit_baseline() -> tuple[TfidfVectorizer, LogisticRegression]:
        vectorizer = TfidfVectorizer()
        features = vectorizer.fit_transform(texts[train])
        return vectorizer, LogisticRegression(max_iter=1000).fit(features, labels[train])

    with threadpool_limits(limits=1):
        (vectorizer, classifier), baseline_s = timed(fit_baseline, args.repeats)
        predicted = classifier.predict(vectorizer.transform(texts[test]))
    baseline_accuracy = float(np.mean(predicted == labels[test]))
    print(f"tfidf+logreg   fit {baseline_s:7.3f} s  accuracy {baseline_accuracy:.4f}")

    train_table = table.take(pa.array(train))
    model = TextConfig.model_validate_json(args.model)

    def fit_dlp() -> TrainedModel:
        return train_text(
            train_table,
            text_column="text",
            target="label",
            task="classification",
            model=model,
            training=TEXT_TRAINING,
        )

    with threadpool_limits(limits=1):
        trained, dlp_s = timed(fit_dlp, args.repeats)
        predictor = load_predictor(trained.files)
        result = predictor.predict(texts[test].tolist())
    dlp_accuracy = float(np.mean(np.array(result.predictions, dtype=object) == labels[test]))
    print(
        f"dlp text bag   fit {dlp_s:7.3f} s  accuracy {dlp_accuracy:.4f}  "
        f"({trained.epochs_run} epochs, best {trained.best_epoch}, "
        f"{trained.n_parameters:,} parameters)"
    )
    ratio, delta = dlp_s / baseline_s, dlp_accuracy - baseline_accuracy
    print(f"text_training: fit_time_ratio={ratio:.2f} accuracy_delta={delta:+.4f}")


if __name__ == "__main__":
    main()
