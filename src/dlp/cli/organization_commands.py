"""``dlp orgs list|create|show|rename`` and ``dlp invitations create|list|revoke|accept``.

Commands act in the organization named by ``DLP_ORG`` (an organization id), else in
the login's default organization.
"""

from __future__ import annotations

from typing import Annotated, Literal

import typer

from dlp.cli.credentials import authenticated_client
from dlp.cli.output import (
    JsonOption,
    LimitOption,
    OffsetOption,
    cli_errors,
    human_bytes,
    print_fields,
    print_json,
    print_page,
    stdout,
)
from dlp.client import Organization

app = typer.Typer(help="Your organizations (act in one with DLP_ORG=<id>).", no_args_is_help=True)
invitations_app = typer.Typer(
    help="Invite people to the current organization.", no_args_is_help=True
)

RoleOption = Annotated[
    Literal["admin", "member", "viewer"], typer.Option(help="Role given on joining.")
]


@app.command("list")
@cli_errors
def list_organizations(
    limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False
) -> None:
    """List the organizations you belong to, with your role in each."""
    with authenticated_client() as client:
        page = client.organizations.list(limit=limit, offset=offset)
    print_page(
        page,
        "organizations",
        ["id", "name", "personal", "role"],
        lambda o: [o.id, o.name, o.is_personal, o.role],
        as_json=as_json,
    )


@app.command("create")
@cli_errors
def create(
    name: Annotated[str, typer.Argument(help="The organization's name.")],
    as_json: JsonOption = False,
) -> None:
    """Create a shared organization; you are its admin."""
    with authenticated_client() as client:
        organization = client.organizations.create(name)
    if as_json:
        print_json(organization)
    else:
        _show(organization)


@app.command("show")
@cli_errors
def show(as_json: JsonOption = False) -> None:
    """Show the current organization, its quotas and its usage."""
    with authenticated_client() as client:
        organization = client.organizations.current()
    if as_json:
        print_json(organization)
    else:
        _show(organization)


@app.command("rename")
@cli_errors
def rename(
    name: Annotated[str, typer.Argument(help="The new name.")], as_json: JsonOption = False
) -> None:
    """Rename the current organization (admins only)."""
    with authenticated_client() as client:
        organization = client.organizations.rename(name)
    if as_json:
        print_json(organization)
    else:
        _show(organization)


@invitations_app.command("create")
@cli_errors
def invite(
    email: Annotated[str, typer.Argument(help="The invitee's email address.")],
    role: RoleOption = "member",
    as_json: JsonOption = False,
) -> None:
    """Invite an email address (admins only) and print the one-time token to send them."""
    with authenticated_client() as client:
        invitation = client.invitations.create(email, role)
    if as_json:
        print_json(invitation)
        return
    stdout.print(
        f"invited {invitation.email} as {invitation.role} until {invitation.expires_at}; "
        f"they accept with: dlp invitations accept {invitation.token}",
        markup=False,
    )


@invitations_app.command("list")
@cli_errors
def list_invitations(
    limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False
) -> None:
    """List the pending invitations (admins only)."""
    with authenticated_client() as client:
        page = client.invitations.list(limit=limit, offset=offset)
    print_page(
        page,
        "invitations",
        ["id", "email", "role", "expires"],
        lambda i: [i.id, i.email, i.role, i.expires_at],
        as_json=as_json,
    )


@invitations_app.command("revoke")
@cli_errors
def revoke(invitation_id: Annotated[str, typer.Argument(help="Invitation id.")]) -> None:
    """Revoke a pending invitation (admins only)."""
    with authenticated_client() as client:
        client.invitations.revoke(invitation_id)
    stdout.print(f"revoked invitation {invitation_id}", markup=False)


@invitations_app.command("accept")
@cli_errors
def accept(
    token: Annotated[str, typer.Argument(help="The token the invitation came with.")],
) -> None:
    """Join the organization of an invitation sent to your email address."""
    with authenticated_client() as client:
        organization = client.invitations.accept(token)
    stdout.print(
        f"joined {organization.name} ({organization.id}) as {organization.role}; "
        f"act there with DLP_ORG={organization.id}",
        markup=False,
    )


def _show(organization: Organization) -> None:
    quotas = organization.quotas or {}
    usage = organization.usage or {}
    storage_quota = quotas.get("max_storage_bytes")
    jobs_quota = quotas.get("max_concurrent_jobs")
    print_fields(
        f"organization {organization.id}",
        {
            "name": organization.name,
            "personal": organization.is_personal,
            "your role": organization.role,
            "storage": f"{human_bytes(usage.get('storage_bytes', 0))} of "
            + ("unlimited" if storage_quota is None else human_bytes(storage_quota)),
            "active jobs": f"{usage.get('active_jobs', 0)} of "
            + ("unlimited" if jobs_quota is None else str(jobs_quota)),
            "created": organization.created_at,
        },
    )
