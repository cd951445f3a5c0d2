"""The members page and its fragment over the ASGI client: admins manage, others read."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.conftest import Account, Deployment, register_account
from tests.factories import add_viewer

FRAGMENT = "/ui/fragments/members"
CONTROLS = ('id="member-form"', 'data-action="member-role"', 'data-action="remove-member"')


def _html(client: TestClient, path: str, headers: dict[str, str]) -> str:
    answer = client.get(path, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    return answer.text


def test_members_page_is_a_shell_linked_from_the_nav(client: TestClient) -> None:
    page = _html(client, "/ui/members", {})
    assert page.startswith("<!doctype html>")
    assert f'hx-get="{FRAGMENT}' in page
    assert "/ui/static/js/members.js" in page
    assert '<a href="/ui/members" aria-current="page">Members</a>' in page
    assert '<a href="/ui/members" >Members</a>' in _html(client, "/ui/jobs", {})
    script = client.get("/ui/static/js/members.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]


def test_admins_get_the_controls(
    client: TestClient, account: Account, other_account: Account
) -> None:
    added = client.post(
        "/api/v1/organizations/current/members",
        headers=account.headers,
        json={"username": other_account.username, "role": "viewer"},
    )
    assert added.status_code == 201, added.text
    html = _html(client, FRAGMENT, account.headers)
    for name in (account.username, other_account.username, f"{other_account.username}@example.com"):
        assert name in html
    for control in CONTROLS:
        assert control in html
    assert f'data-user-id="{other_account.id}" data-role="viewer"' in html
    assert '<option value="viewer" selected>viewer</option>' in html
    assert ">leave</button>" in html and ">remove</button>" in html
    assert "Only the organization's admins" not in html


def test_viewers_read_the_list_without_controls(
    client: TestClient, deployment: Deployment, account: Account, other_account: Account
) -> None:
    as_viewer = add_viewer(deployment, account, other_account)
    html = _html(client, FRAGMENT, as_viewer)
    assert account.username in html and other_account.username in html
    assert "(you)" in html
    for control in CONTROLS:
        assert control not in html
    assert "Only the organization's admins" in html
    # An organization's list holds only its own members.
    outsider = register_account(client)
    assert outsider.username not in html
    assert account.username not in _html(client, FRAGMENT, outsider.headers)


def test_the_fragment_needs_credentials(client: TestClient) -> None:
    answer = client.get(FRAGMENT)
    assert answer.status_code == 401
    assert answer.json()["error"] == "authentication_error"
