"""Organization calls: yours, a new shared one, the current one, its invitations, quotas."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from dlp.client.resource import DEFAULT_PAGE_SIZE, Resource, iter_pages
from dlp.client.schemas import Invitation, Organization, Page

Role = Literal["admin", "member", "viewer"]
CURRENT = "/api/v1/organizations/current"
INVITATIONS = CURRENT + "/invitations"


class Organizations(Resource):
    """``client.organizations``: the organizations you belong to (pick one with
    ``Client(..., organization_id=...)``)."""

    def list(self, *, limit: int = 50, offset: int = 0) -> Page[Organization]:
        """One page of your organizations, by name, with your role in each."""
        response = self._transport.request(
            "GET", "/api/v1/organizations", params={"limit": limit, "offset": offset}
        )
        return Page[Organization].model_validate(response.json())

    def iter(self, *, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[Organization]:
        """Every organization you belong to."""
        return iter_pages(lambda limit, offset: self.list(limit=limit, offset=offset), page_size)

    def create(self, name: str) -> Organization:
        """A new shared organization; you are its admin."""
        response = self._transport.request("POST", "/api/v1/organizations", json={"name": name})
        return Organization.model_validate(response.json())

    def current(self) -> Organization:
        """The current organization, with your role, its quotas and its usage."""
        return Organization.model_validate(self._transport.request("GET", CURRENT).json())

    def rename(self, name: str) -> Organization:
        """Rename the current organization (admins only)."""
        response = self._transport.request("PATCH", CURRENT, json={"name": name})
        return Organization.model_validate(response.json())

    def set_quotas(
        self,
        organization_id: str,
        *,
        max_storage_bytes: int | None = None,
        max_concurrent_jobs: int | None = None,
        reset: bool = False,
    ) -> Organization:
        """Set an organization's own quotas (the installation's superuser only); the
        arguments given change, ``reset=True`` sends both (None: the default applies)."""
        body = {"max_storage_bytes": max_storage_bytes, "max_concurrent_jobs": max_concurrent_jobs}
        if not reset:
            body = {name: value for name, value in body.items() if value is not None}
        response = self._transport.request(
            "PATCH", f"/api/v1/admin/organizations/{organization_id}", json=body
        )
        return Organization.model_validate(response.json())


class Invitations(Resource):
    """``client.invitations``: invitations to the current organization, and accepting one."""

    def create(self, email: str, role: Role = "member") -> Invitation:
        """Invite ``email`` (admins only); the invitation's ``token`` is shown this once."""
        response = self._transport.request("POST", INVITATIONS, json={"email": email, "role": role})
        return Invitation.model_validate(response.json())

    def list(self, *, limit: int = 50, offset: int = 0) -> Page[Invitation]:
        """One page of the pending invitations, newest first (admins only)."""
        response = self._transport.request(
            "GET", INVITATIONS, params={"limit": limit, "offset": offset}
        )
        return Page[Invitation].model_validate(response.json())

    def revoke(self, invitation_id: str) -> None:
        """Revoke a pending invitation (admins only)."""
        self._transport.request("DELETE", f"{INVITATIONS}/{invitation_id}")

    def accept(self, token: str) -> Organization:
        """Join the organization of an invitation sent to your email address."""
        response = self._transport.request(
            "POST", "/api/v1/invitations/accept", json={"token": token}
        )
        return Organization.model_validate(response.json())
