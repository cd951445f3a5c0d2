"""Hyperparameter tuning: Optuna studies whose trials are training jobs run by the workers."""
