"""How the client commands print: rich tables for people, JSON for scripts, and exit
codes that mean something."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from dlp.cli.credentials import NotLoggedInError
from dlp.client import AuthenticationError, DLPClientError, Page
from dlp.client.schemas import Result
from dlp.client.transport import ProgressCallback

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_JOB_FAILED = 4
EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 the server refused the call (its message and request id go to "
    "stderr) or could not be reached; 2 bad usage; 3 not logged in or credentials refused; "
    "4 a watched job or study ended failed or cancelled."
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
LimitOption = Annotated[int, typer.Option(min=1, max=200, help="Items per page.")]
OffsetOption = Annotated[int, typer.Option(min=0, help="Items to skip.")]

stdout = Console(highlight=False)
stderr = Console(stderr=True, highlight=False)

P = ParamSpec("P")
R = TypeVar("R")
Item = TypeVar("Item", bound=Result)


def cli_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Turn SDK errors into one line on stderr and a meaningful exit code, never a traceback."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except NotLoggedInError as exc:
            fail(str(exc), EXIT_AUTH)
        except AuthenticationError as exc:
            fail(f"{exc}\nlog in again with `dlp login`", EXIT_AUTH)
        except DLPClientError as exc:
            fail(str(exc), EXIT_ERROR)
        except OSError as exc:  # a local file that cannot be read or written
            fail(str(exc), EXIT_ERROR)

    return run


def fail(message: str, code: int = EXIT_ERROR) -> NoReturn:
    """Print ``dlp: <message>`` to stderr and end the command with ``code``."""
    stderr.print(f"dlp: {message}", markup=False)
    raise typer.Exit(code)


def print_json(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> None:
    """A result (or a list of them) as indented JSON on stdout."""
    typer.echo(json.dumps(to_jsonable(value), indent=2))


def to_jsonable(value: BaseModel | Sequence[BaseModel] | dict[str, Any]) -> Any:
    """The JSON-ready form of a result, a list of results or a plain dict."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True)
    if isinstance(value, dict):
        return value
    return [item.model_dump(mode="json", by_alias=True) for item in value]


def page_title(noun: str, page: Page[Any]) -> str:
    """``datasets 1-50 of 120``, or ``no datasets``."""
    if not page.items:
        return f"no {noun}" if page.offset == 0 else f"no {noun} past {page.offset}"
    return f"{noun} {page.offset + 1}-{page.offset + len(page.items)} of {page.total}"


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A rich table on stdout."""
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*(cell(value) for value in row))
    stdout.print(table)


def print_page(
    page: Page[Item],
    noun: str,
    columns: Sequence[str],
    row: Callable[[Item], Sequence[Any]],
    *,
    as_json: bool,
) -> None:
    """One page of a list: as JSON, or as a table titled with what it holds."""
    if as_json:
        print_json(page)
    else:
        print_table(page_title(noun, page), columns, (row(item) for item in page.items))


def print_fields(title: str, fields: dict[str, Any]) -> None:
    """A two-column table of a resource's fields."""
    print_table(title, ["field", "value"], fields.items())


def cell(value: Any) -> str:
    """A value as table text: numbers rounded, times to the second, None as '-'."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def human_bytes(size: int | None) -> str:
    """1536 -> '1.5 KiB'."""
    if size is None:
        return "-"
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    amount, unit = float(size), 0
    while amount >= 1024 and unit < len(units) - 1:
        amount, unit = amount / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{amount:.1f} {units[unit]}"


@contextmanager
def transfer_progress(description: str) -> Iterator[ProgressCallback]:
    """A byte progress bar on stderr (shown on terminals only); yields its callback."""
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=stderr, disable=not stderr.is_terminal) as bar:
        task = bar.add_task(description, total=None)

        def advance(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        yield advance
