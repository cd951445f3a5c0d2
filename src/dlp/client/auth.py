"""Auth calls: register, log in and out, refresh, the current user, passwords, API keys."""

from __future__ import annotations

from typing import Any, Literal

from dlp.client.resource import Resource
from dlp.client.schemas import ApiKey, ApiKeyInfo, Page, TokenPair, User


class Auth(Resource):
    """``client.auth``: accounts, tokens and API keys."""

    def register(self, username: str, email: str, password: str) -> User:
        """Create an account (and its personal organization)."""
        body = {"username": username, "email": email, "password": password}
        response = self._transport.request(
            "POST", "/api/v1/auth/register", json=body, authenticated=False
        )
        return User.model_validate(response.json())

    def login(self, username: str, password: str) -> TokenPair:
        """Exchange a username (or email) and password for tokens; the client uses them."""
        response = self._transport.request(
            "POST",
            "/api/v1/auth/login",
            data={"username": username, "password": password},
            authenticated=False,
        )
        pair = TokenPair.model_validate(response.json())
        self._transport.set_tokens(pair)
        return pair

    def refresh(self) -> TokenPair:
        """Spend the refresh token for a new pair; the old refresh token stops working."""
        return self._transport.refresh()

    def logout(self) -> None:
        """Revoke the current login (its refresh token) and forget the tokens."""
        if self._transport.refresh_token:
            self._transport.request(
                "POST",
                "/api/v1/auth/logout",
                json={"refresh_token": self._transport.refresh_token},
                authenticated=False,
            )
        self._transport.access_token = None
        self._transport.refresh_token = None

    def me(self) -> User:
        """The calling user, in the current organization."""
        return User.model_validate(self._transport.request("GET", "/api/v1/users/me").json())

    def change_password(self, current_password: str, new_password: str) -> None:
        """Change the password; every login of the user, this one too, is signed out."""
        body = {"current_password": current_password, "new_password": new_password}
        self._transport.request("POST", "/api/v1/users/me/password", json=body)

    def create_api_key(
        self,
        name: str,
        *,
        scope: Literal["read", "write", "predict"] = "write",
        expires_in_days: int | None = None,
    ) -> ApiKey:
        """A new API key in the current organization; its ``key`` is shown this once.

        ``scope``: ``read`` (reads only), ``write`` (whatever your role allows) or
        ``predict`` (the prediction endpoints only); ``expires_in_days``: None for never.
        """
        body: dict[str, Any] = {"name": name, "scope": scope}
        if expires_in_days is not None:
            body["expires_in_days"] = expires_in_days
        response = self._transport.request("POST", "/api/v1/api-keys", json=body)
        return ApiKey.model_validate(response.json())

    def list_api_keys(self, *, limit: int = 50, offset: int = 0) -> Page[ApiKeyInfo]:
        """One page of your API keys in the current organization, newest first."""
        response = self._transport.request(
            "GET", "/api/v1/api-keys", params={"limit": limit, "offset": offset}
        )
        return Page[ApiKeyInfo].model_validate(response.json())

    def delete_api_key(self, key_id: str) -> None:
        """Revoke an API key."""
        self._transport.request("DELETE", f"/api/v1/api-keys/{key_id}")
