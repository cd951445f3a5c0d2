"""The ``dlp`` commands that talk to a server through the SDK (``dlp.client``)."""

from __future__ import annotations

import typer

from dlp.cli import (
    auth_commands,
    dataset_commands,
    job_commands,
    model_commands,
    organization_commands,
    predict_command,
    tune_command,
)


def register_client_commands(app: typer.Typer) -> None:
    """Add login, datasets, train, jobs, models, predict, tune, orgs and invitations to
    ``app``."""
    app.command("login")(auth_commands.login)
    app.command("logout")(auth_commands.logout)
    app.command("whoami")(auth_commands.whoami)
    app.add_typer(dataset_commands.app, name="datasets")
    app.command("train")(job_commands.train)
    app.add_typer(job_commands.app, name="jobs")
    app.add_typer(model_commands.app, name="models")
    app.command("predict")(predict_command.predict)
    app.command("tune")(tune_command.tune)
    app.add_typer(organization_commands.app, name="orgs")
    app.add_typer(organization_commands.invitations_app, name="invitations")
