"""``dlp models list|show|versions|download|alias|delete``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    print_table,
    stdout,
    transfer_progress,
)
from dlp.client import ModelVersion

app = typer.Typer(help="Model versions, the registry's names and aliases.", no_args_is_help=True)

ModelId = Annotated[str, typer.Argument(help="Model version id.")]
ModelName = Annotated[str, typer.Argument(help="Registry model name.")]


@app.command("list")
@cli_errors
def list_models(
    limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False
) -> None:
    """List the organization's model versions, newest first."""
    with authenticated_client() as client:
        page = client.models.list(limit=limit, offset=offset)
    print_page(
        page,
        "models",
        ["id", "name", "version", "task", "type", "metrics", "created"],
        lambda m: [m.id, m.name, m.version, m.task, m.type, _key_metrics(m), m.created_at],
        as_json=as_json,
    )


@app.command("show")
@cli_errors
def show(model_id: ModelId, as_json: JsonOption = False) -> None:
    """Show a model version: lineage, metrics, inputs and classes."""
    with authenticated_client() as client:
        model = client.models.get(model_id)
    if as_json:
        print_json(model)
        return
    print_fields(
        f"model {model.id}",
        {
            "name": model.name,
            "version": model.version,
            "task": model.task,
            "type": model.type,
            "data": model.data_kind,
            "dataset": model.dataset_id,
            "job": model.job_id,
            "size": human_bytes(model.size_bytes),
            "classes": model.classes,
            "inputs": ", ".join(str(column.get("name")) for column in model.input_schema),
            "created": model.created_at,
            **{f"metric {name}": value for name, value in sorted(model.metrics.items())},
        },
    )


@app.command("versions")
@cli_errors
def versions(name: ModelName, as_json: JsonOption = False) -> None:
    """List a model name's versions with its aliases and traffic split."""
    with authenticated_client() as client:
        registry = client.registry.versions(name)
    if as_json:
        print_json(registry)
        return
    aliases_of: dict[int, list[str]] = {}
    for alias, version in registry.aliases.items():
        aliases_of.setdefault(version, []).append(alias)
    traffic = registry.traffic or {}
    print_table(
        f"versions of {registry.name}",
        ["version", "id", "aliases", "traffic", "metrics", "created"],
        (
            [
                m.version,
                m.id,
                ", ".join(sorted(aliases_of.get(m.version, []))),
                traffic.get(str(m.version)),
                _key_metrics(m),
                m.created_at,
            ]
            for m in registry.versions
        ),
    )


@app.command("alias")
@cli_errors
def alias(
    name: ModelName,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS", help="e.g. production.")],
    version: Annotated[int, typer.Argument(min=1, help="Version the alias points at.")],
    as_json: JsonOption = False,
) -> None:
    """Point an alias of a model name at one of its versions."""
    with authenticated_client() as client:
        row = client.registry.set_alias(name, alias_name, version)
    if as_json:
        print_json(row)
    else:
        stdout.print(f"{row.name}@{row.alias} -> version {row.version}", markup=False)


@app.command("download")
@cli_errors
def download(
    model_id: ModelId,
    format: Annotated[str, typer.Option(help="safetensors, onnx or torchscript.")] = "safetensors",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File or folder to write.")
    ] = Path(),
) -> None:
    """Download a model's weights or an ONNX / TorchScript export."""
    with authenticated_client() as client, transfer_progress("downloading") as bar:
        written = client.models.download(model_id, output, format=format, progress=bar)
    stdout.print(f"wrote {written}", markup=False)


@app.command("delete")
@cli_errors
def delete(
    model_id: ModelId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a model version and its files."""
    if not yes:
        typer.confirm(f"delete model {model_id}?", abort=True)
    with authenticated_client() as client:
        client.models.delete(model_id)
    stdout.print(f"deleted model {model_id}", markup=False)


def _key_metrics(model: ModelVersion) -> str:
    shown = ("val_accuracy", "val_f1", "val_rmse", "val_r2")
    return ", ".join(
        f"{name}={value:.4g}"
        for name, value in model.metrics.items()
        if name in shown and value is not None
    )
