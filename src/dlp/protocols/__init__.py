"""Standard prediction protocols on the same models: Open Inference Protocol v2, MLflow scoring."""
