"""Following a training job on the terminal: an epoch progress bar and a metrics table."""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from dlp.cli.output import cell
from dlp.client import Client, JobEvent, LogEvent, MetricEvent, StatusEvent, TrainingJob

SHOWN_EPOCHS = 15
"""Rows of the live metrics table: the latest epochs."""


class MetricsBoard:
    """What the events said so far: status, epochs, and each epoch's metric values."""

    def __init__(self) -> None:
        self.status = "queued"
        self.epoch = 0
        self.total_epochs = 0
        self.names: list[str] = []
        self.by_epoch: dict[int, dict[str, float | None]] = {}

    def add(self, event: JobEvent) -> None:
        """Take in one event."""
        if isinstance(event, StatusEvent):
            self.status = event.status
            self.epoch = max(self.epoch, event.progress.epoch)
            self.total_epochs = event.progress.total_epochs or self.total_epochs
        elif isinstance(event, MetricEvent):
            if event.name not in self.names:
                self.names.append(event.name)
            self.by_epoch.setdefault(event.epoch, {})[event.name] = event.value
            self.epoch = max(self.epoch, event.epoch)

    def table(self, last: int | None = SHOWN_EPOCHS) -> Table:
        """The metrics per epoch (the ``last`` epochs, or all of them)."""
        table = Table(title="metrics", title_justify="left")
        table.add_column("epoch", justify="right")
        for name in self.names:
            table.add_column(name, justify="right")
        epochs = sorted(self.by_epoch)
        for epoch in epochs[-last:] if last else epochs:
            values = self.by_epoch[epoch]
            table.add_row(str(epoch), *(cell(values.get(name)) for name in self.names))
        return table


def follow_job(client: Client, job_id: str, console: Console) -> TrainingJob:
    """Show the job's progress and metrics live until it ends; return its final state.

    On a terminal the bar and table redraw in place; elsewhere (pipes, CI logs)
    status changes and log lines are printed as they come and the table once at the end.
    """
    board = MetricsBoard()
    if console.is_terminal:
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        task = bar.add_task("queued", total=None)
        with Live(Group(bar, board.table()), console=console, refresh_per_second=4) as live:
            for event in client.jobs.events(job_id):
                board.add(event)
                if isinstance(event, LogEvent):
                    live.console.print(event.message, markup=False)
                bar.update(
                    task,
                    description=board.status,
                    completed=board.epoch,
                    total=board.total_epochs or None,
                )
                live.update(Group(bar, board.table()))
    else:
        for event in client.jobs.events(job_id):
            board.add(event)
            if isinstance(event, StatusEvent):
                console.print(f"job {job_id} {event.status}", markup=False)
            elif isinstance(event, LogEvent):
                console.print(event.message, markup=False)
        console.print(board.table(last=None))
    return client.jobs.wait(job_id)
