"""``dlp login``, ``dlp logout``, ``dlp whoami``."""

from __future__ import annotations

from typing import Annotated

import typer

from dlp.cli.credentials import (
    Credentials,
    authenticated_client,
    forget_credentials,
    load_credentials,
    save_credentials,
    server_url,
)
from dlp.cli.output import JsonOption, cli_errors, print_fields, print_json, stderr, stdout
from dlp.client import Client, DLPClientError


@cli_errors
def login(
    username: Annotated[str, typer.Option(prompt=True, help="Username or email.")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, help="Prompted for when omitted.")
    ],
    url: Annotated[
        str | None, typer.Option(help="Server URL (default DLP_URL, the last login's, or local).")
    ] = None,
) -> None:
    """Log in and keep the tokens in the config dir (file mode 0600)."""
    target = server_url(url)
    with Client(target) as client:
        pair = client.auth.login(username, password)
    path = save_credentials(
        Credentials(
            url=target,
            username=username,
            access_token=pair.access_token,
            refresh_token=pair.refresh_token,
        )
    )
    stdout.print(f"logged in to {target} as {username} (credentials in {path})", markup=False)


@cli_errors
def logout() -> None:
    """Revoke the saved login on the server and delete it here."""
    saved = load_credentials()
    if saved is not None:
        with Client(saved.url, saved.access_token, refresh_token=saved.refresh_token) as client:
            try:
                client.auth.logout()
            except DLPClientError as exc:
                stderr.print(f"dlp: the server did not revoke the login: {exc}", markup=False)
    forget_credentials()
    stdout.print("logged out" if saved is not None else "not logged in")


@cli_errors
def whoami(as_json: JsonOption = False) -> None:
    """Show the user the credentials belong to."""
    with authenticated_client() as client:
        user = client.auth.me()
    if as_json:
        print_json(user)
        return
    print_fields(
        client.url,
        {
            "username": user.username,
            "email": user.email,
            "role": user.role,
            "organization_id": user.organization_id,
            "superuser": user.is_superuser,
        },
    )
