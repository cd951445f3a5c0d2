"""Fixtures of the storage tests; the S3 server itself is ``tests.s3``'s ``s3_endpoint``."""

from __future__ import annotations

import pytest

from tests.s3 import new_bucket


@pytest.fixture
def bucket(s3_endpoint: str) -> str:
    """A fresh bucket for one test."""
    return new_bucket()
