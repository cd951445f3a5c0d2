"""``dlp datasets upload|list|show|download|delete``."""

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
from dlp.client import Dataset

app = typer.Typer(help="Upload and manage datasets.", no_args_is_help=True)

DatasetId = Annotated[str, typer.Argument(help="Dataset id.")]


@app.command("upload")
@cli_errors
def upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help=".csv, .parquet or .zip file.")
    ],
    name: Annotated[str | None, typer.Option(help="Name (default: the file name).")] = None,
    kind: Annotated[
        str | None, typer.Option(help="tabular, text or image (detected when omitted).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Upload a file (streamed, with a progress bar on terminals) and print the dataset."""
    with authenticated_client() as client, transfer_progress(f"uploading {file.name}") as bar:
        dataset = client.datasets.upload(file, name=name, kind=kind, progress=bar)
    if as_json:
        print_json(dataset)
    else:
        _show(dataset)


@app.command("list")
@cli_errors
def list_datasets(
    limit: LimitOption = 50, offset: OffsetOption = 0, as_json: JsonOption = False
) -> None:
    """List the organization's datasets, newest first."""
    with authenticated_client() as client:
        page = client.datasets.list(limit=limit, offset=offset)
    print_page(
        page,
        "datasets",
        ["id", "name", "kind", "status", "rows", "size", "created"],
        lambda d: [
            d.id,
            d.name,
            d.kind,
            d.status,
            d.n_rows,
            human_bytes(d.size_bytes),
            d.created_at,
        ],
        as_json=as_json,
    )


@app.command("show")
@cli_errors
def show(dataset_id: DatasetId, as_json: JsonOption = False) -> None:
    """Show a dataset and its columns."""
    with authenticated_client() as client:
        dataset = client.datasets.get(dataset_id)
    if as_json:
        print_json(dataset)
    else:
        _show(dataset)


@app.command("download")
@cli_errors
def download(
    dataset_id: DatasetId,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="File or folder to write.")
    ] = Path(),
) -> None:
    """Download a dataset's original file."""
    with authenticated_client() as client, transfer_progress("downloading") as bar:
        written = client.datasets.download(dataset_id, output, progress=bar)
    stdout.print(f"wrote {written}", markup=False)


@app.command("delete")
@cli_errors
def delete(
    dataset_id: DatasetId,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a dataset and its files."""
    if not yes:
        typer.confirm(f"delete dataset {dataset_id}?", abort=True)
    with authenticated_client() as client:
        client.datasets.delete(dataset_id)
    stdout.print(f"deleted dataset {dataset_id}", markup=False)


def _show(dataset: Dataset) -> None:
    print_fields(
        f"dataset {dataset.id}",
        {
            "name": dataset.name,
            "kind": dataset.kind,
            "status": dataset.status,
            "rows": dataset.n_rows,
            "size": human_bytes(dataset.size_bytes),
            "error": dataset.error_message,
            "created": dataset.created_at,
        },
    )
    columns = dataset.schema_.get("columns")
    if isinstance(columns, list) and columns:
        print_table(
            "columns",
            ["name", "dtype", "missing", "unique"],
            (
                [c.get("name"), c.get("dtype"), c.get("n_missing"), c.get("n_unique")]
                for c in columns
                if isinstance(c, dict)
            ),
        )
    elif dataset.schema_.get("classes"):
        stdout.print(f"classes: {', '.join(map(str, dataset.schema_['classes']))}", markup=False)
