"""Where the ``dlp`` command finds its server and credentials.

``dlp login`` keeps the URL and the token pair in ``$XDG_CONFIG_HOME/dlp/credentials.json``
(default ``~/.config/dlp``; folder 0700, file 0600). ``DLP_URL``, ``DLP_TOKEN`` and
``DLP_API_KEY`` override it, for scripts.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from dlp.client import Client, TokenPair

DEFAULT_URL = "http://127.0.0.1:8000"
CREDENTIALS_FILE = "credentials.json"


class NotLoggedInError(Exception):
    """No credentials for the server: neither a login nor DLP_TOKEN / DLP_API_KEY."""


@dataclass
class Credentials:
    """A login saved by ``dlp login``."""

    url: str
    username: str
    access_token: str
    refresh_token: str


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/dlp``, or ``~/.config/dlp``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dlp"


def credentials_path() -> Path:
    """The file ``dlp login`` writes."""
    return config_dir() / CREDENTIALS_FILE


def load_credentials() -> Credentials | None:
    """The saved login, or None when there is none (or it is unreadable)."""
    try:
        data = json.loads(credentials_path().read_text())
        return Credentials(**{key: str(data[key]) for key in Credentials.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save_credentials(credentials: Credentials) -> Path:
    """Write the login readable by its owner only (folder 0700, file 0600)."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / CREDENTIALS_FILE
    temporary = path.with_suffix(".tmp")
    # Created 0600 from the start, so the tokens are never readable by others, even briefly.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(asdict(credentials), handle, indent=2)
    temporary.replace(path)
    return path


def forget_credentials() -> bool:
    """Delete the saved login; True when there was one."""
    try:
        credentials_path().unlink()
    except FileNotFoundError:
        return False
    return True


def server_url(option: str | None = None) -> str:
    """The server: ``--url``, else ``DLP_URL``, else the saved login's, else the default."""
    if option:
        return option.rstrip("/")
    if os.environ.get("DLP_URL"):
        return os.environ["DLP_URL"].rstrip("/")
    saved = load_credentials()
    return saved.url if saved is not None else DEFAULT_URL


def authenticated_client() -> Client:
    """A client with the environment's credentials, else the saved login's (which is
    kept up to date as the client refreshes its tokens), acting in the organization
    ``DLP_ORG`` names (default: the login's own)."""
    url = server_url()
    organization = os.environ.get("DLP_ORG") or None
    token, api_key = os.environ.get("DLP_TOKEN"), os.environ.get("DLP_API_KEY")
    if token or api_key:
        return Client(url, token or None, api_key=api_key or None, organization_id=organization)
    saved = load_credentials()
    # Saved tokens belong to the server they came from; never send them anywhere else.
    if saved is None or saved.url != url:
        raise NotLoggedInError(f"not logged in to {url}: run `dlp login` or set DLP_TOKEN")

    def keep(pair: TokenPair) -> None:
        saved.access_token, saved.refresh_token = pair.access_token, pair.refresh_token
        save_credentials(saved)

    return Client(
        url,
        saved.access_token,
        refresh_token=saved.refresh_token,
        on_tokens=keep,
        organization_id=organization,
    )
