"""Operations: health, readiness, metrics and logging."""
