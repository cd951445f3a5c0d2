"""The settings that bound what callers may do: request budgets, body limits, CORS, and
the keys that encrypt stored files. ``dlp.config.Settings`` inherits them; every one is
an environment variable prefixed ``DLP_``."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_ORIGIN = re.compile(r"https?://(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


class SecuritySettings(BaseSettings):
    """Budgets, limits and keys, read from ``DLP_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="DLP_", extra="ignore")

    encryption_key: SecretStr | None = Field(
        default=None,
        description="Encrypt stored files at rest (AES-256-GCM) with this key, the base64 "
        "of 32 random bytes (`dlp keys generate`). Unset: files are stored as they are.",
    )
    encryption_old_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated former DLP_ENCRYPTION_KEY values: files sealed with "
        "them stay readable until `dlp storage reencrypt` rewrites them.",
    )
    encryption_allow_plaintext: bool = Field(
        default=True,
        description="With DLP_ENCRYPTION_KEY set, still read files stored before encryption "
        "was switched on; set false once `dlp storage reencrypt` has rewritten them.",
    )
    max_json_body_mb: int = Field(
        default=10, gt=0, description="Largest JSON (or form) request body, uploads aside."
    )
    max_predict_body_mb: int = Field(
        default=64,
        gt=0,
        description="Largest body of a prediction request (base64 images need more room).",
    )
    max_json_depth: int = Field(
        default=64, ge=2, le=1000, description="Deepest nesting of arrays and objects in JSON."
    )
    cors_origins: str = Field(
        default="",
        description="Comma-separated origins (scheme://host[:port]) whose browser pages may "
        "call the API; empty: no cross-origin access.",
    )
    rate_limit_api: str = Field(
        default="1200/minute",
        description="Requests each caller (a user, or an API key) may make to the API, "
        "predictions aside, in limits' notation ('1200/minute', '50 per 10 seconds'); "
        "empty: no limit. Over it: 429 with Retry-After.",
    )
    rate_limit_api_per_ip: str = Field(
        default="6000/minute",
        description="Requests to the API, predictions aside, from one client IP (every "
        "caller behind it, and unauthenticated requests); empty: no limit.",
    )
    rate_limit_predictions: str = Field(
        default="60000/minute",
        description="Prediction requests (/predict, /invocations, /v2) each caller may make; "
        "empty: no limit.",
    )
    rate_limit_predictions_per_ip: str = Field(
        default="120000/minute",
        description="Prediction requests from one client IP; empty: no limit.",
    )
    login_failures_per_account: str = Field(
        default="5/15 minutes",
        description="Failed sign-ins to one account (by login name) after which its sign-ins "
        "are refused with 429, even with the right password, until the window moves on.",
    )
    login_failures_per_ip: str = Field(
        default="50/15 minutes",
        description="Failed sign-ins from one client IP, whatever the account, after which "
        "its sign-ins are refused with 429; a success does not reset it.",
    )
    registrations_per_ip: str = Field(
        default="20/hour", description="Account registrations from one client IP."
    )
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For `dlp serve` believes (the client IP that rate limits count); "
        "empty: believe none.",
    )

    @field_validator("encryption_key", "encryption_old_keys")
    @classmethod
    def _encryption_keys_decode(
        cls, value: SecretStr | None, info: ValidationInfo
    ) -> SecretStr | None:
        from dlp.storage.keyring import decode_key

        if value is None:
            return None
        if info.field_name == "encryption_key":
            decode_key(value.get_secret_value())
            return value
        if "encryption_key" in info.data and info.data["encryption_key"] is None:
            raise ValueError("old keys need a current DLP_ENCRYPTION_KEY to seal new files")
        for text in value.get_secret_value().split(","):
            if text.strip():
                decode_key(text)
        return value

    @property
    def cors_origin_list(self) -> list[str]:
        """The allowed cross-origin callers, from ``DLP_CORS_ORIGINS``."""
        return [origin.strip() for origin in self.cors_origins.split(",") if origin.strip()]

    @model_validator(mode="after")
    def _cors_origins_are_origins(self) -> SecuritySettings:
        for origin in self.cors_origin_list:
            if not _ORIGIN.fullmatch(origin):
                raise ValueError(
                    f"DLP_CORS_ORIGINS: {origin!r} is not an origin like https://app.example.com "
                    "(no wildcard, path or trailing slash)"
                )
        return self
