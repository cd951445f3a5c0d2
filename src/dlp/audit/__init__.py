"""The audit log: who did what to which resource, for organization admins to page through."""
