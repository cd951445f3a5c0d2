"""HMAC signatures of webhook bodies."""

from __future__ import annotations

import hashlib
import hmac

from dlp.webhooks.signing import new_secret, sign, verify

BODY = b'{"id": "1", "status": "succeeded"}'


def test_sign_is_hmac_sha256_hex_with_prefix() -> None:
    expected = hmac.new(b"whsec_abc", BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, "whsec_abc") == f"sha256={expected}"


def test_verify_accepts_the_signature_of_the_same_body_and_secret() -> None:
    assert verify(BODY, "whsec_abc", sign(BODY, "whsec_abc"))


def test_verify_refuses_a_tampered_body_a_wrong_secret_or_a_mangled_signature() -> None:
    signature = sign(BODY, "whsec_abc")
    assert not verify(BODY.replace(b"succeeded", b"failed"), "whsec_abc", signature)
    assert not verify(BODY + b" ", "whsec_abc", signature)
    assert not verify(BODY, "whsec_abd", signature)
    assert not verify(BODY, "whsec_abc", signature.removeprefix("sha256="))
    assert not verify(BODY, "whsec_abc", signature.upper())
    assert not verify(BODY, "whsec_abc", "")
    assert not verify(BODY, "whsec_abc", "sha256=é")


def test_new_secrets_are_prefixed_random_and_fit_the_column() -> None:
    secrets = {new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert secret.startswith("whsec_")
        assert len(secret) == len("whsec_") + 43
        assert len(secret) <= 100
        assert all(c.isalnum() or c in "-_" for c in secret.removeprefix("whsec_"))
