"""The web UI in a real browser against a real ``dlp serve``: register, upload a CSV,
train, watch the curve grow, predict in the playground; a screenshot of every page at
desktop (1280 px) and phone (390 px) widths."""

from __future__ import annotations

import csv
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

from tests.live import live_server

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
FEATURES = [f"x{i}" for i in range(6)]
TRAINING_SECONDS = 120.0
# Enough rows and epochs that training lasts several seconds, so the curve is seen growing.
ROWS = 1200
EPOCHS = 25
USERNAME = "ada"
SLOW_UPLINK = {
    "offline": False,
    "latency": 0,
    "downloadThroughput": -1,
    "uploadThroughput": 64 * 1024,
}
STALE_TOKEN = re.compile(r"status of 401|Error Code 401 from")


@dataclass
class Flow:
    """Where the pages of one run are, and the browser errors seen on the way."""

    base_url: str
    screenshots: Path
    visited: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def shoot(self, page: Page, name: str) -> None:
        """Screenshot the whole page and remember its address for the phone pass."""
        page.screenshot(path=self.screenshots / f"desktop-{name}.png", full_page=True)
        self.visited[name] = page.url.removeprefix(self.base_url)

    def watch(self, page: Page) -> None:
        """Collect uncaught exceptions and console errors."""
        page.on("pageerror", lambda error: self.errors.append(f"{page.url}: {error}"))
        page.on("console", lambda message: self._console(page, message))

    def _console(self, page: Page, message: ConsoleMessage) -> None:
        # A refused stale token is logged (by the browser and htmx); the page then refreshes it.
        if message.type == "error" and not STALE_TOKEN.search(message.text):
            self.errors.append(f"{page.url}: {message.text}")


# Far from the boundary x0 + x1 = 0, so any decent model answers "yes".
PLAYGROUND_ROW = {"x0": 1.5, "x1": 1.2, "x2": 0.0, "x3": 0.3, "x4": -0.2, "x5": 0.1}


def wait_until(page: Page, expression: str, arg: Any = None, timeout: float = 30.0) -> None:
    """Poll a JavaScript expression (or function of ``arg``) until it is truthy.

    Not ``page.wait_for_function``: Playwright runs its predicate through ``eval``, which
    the UI's Content-Security-Policy (no 'unsafe-eval') rightly refuses; ``evaluate``
    goes through the DevTools protocol instead.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"still false after {timeout} s: {expression}")
        time.sleep(0.02)


def write_training_csv(path: Path) -> None:
    """A synthetic table: six numbers, and ``label`` "yes" when x0 + x1 > 0, else "no"."""
    rng = np.random.default_rng(0)
    features = rng.normal(size=(ROWS, len(FEATURES)))
    labels = np.where(features[:, 0] + features[:, 1] > 0, "yes", "no")
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        for row, label in zip(features.tolist(), labels.tolist(), strict=True):
            writer.writerow([*(f"{value:.5f}" for value in row), label])


def points(page: Page) -> int:
    """Metric points the job chart has drawn so far."""
    return int(page.locator("#job-chart").get_attribute("data-points") or 0)


def register_and_upload(page: Page, flow: Flow, csv_path: Path) -> None:
    page.goto(flow.base_url + "/")
    expect(page).to_have_url(re.compile(r"/ui/login"))
    flow.shoot(page, "login")
    page.get_by_role("link", name="Create one").click()
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Email").fill(f"{USERNAME}@example.com")
    page.get_by_label("Password").fill("correct horse battery")
    flow.shoot(page, "register")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/ui/datasets$"))
    expect(page.locator(".nav .me")).to_contain_text(USERNAME)
    downloads: list[str] = []

    def note_download(request: Request) -> None:
        if request.url.endswith("/download"):
            downloads.append(request.url)

    page.on("request", note_download)
    page.locator("input[name=file]").set_input_files(csv_path)
    # A slow uplink, so the progress bar is seen part-way.
    network = page.context.new_cdp_session(page)
    network.send("Network.enable")
    network.send("Network.emulateNetworkConditions", SLOW_UPLINK)
    page.get_by_role("button", name="Upload").click()
    wait_until(
        page,
        "(() => { const bar = document.querySelector('.upload-progress progress');"
        " return bar.value > 0 && bar.value < 100; })()",
    )
    network.detach()
    expect(page).to_have_url(re.compile(r"/ui/datasets/[0-9a-f-]{36}$"))
    expect(page.locator("#profile tbody tr")).to_have_count(len(FEATURES) + 1)
    expect(page.locator("#profile canvas[data-histogram]")).to_have_count(len(FEATURES) + 1)
    # Every column's bars come with the profile and add up to the whole table.
    wait_until(
        page,
        "([columns, rows]) => { const charts = Object.values(Chart.instances)"
        ".filter((chart) => chart.canvas.closest('#profile'));"
        " return charts.length === columns && charts.every((chart) =>"
        " chart.data.datasets[0].data.reduce((a, b) => a + b, 0) === rows); }",
        arg=[len(FEATURES) + 1, ROWS],
    )
    assert not downloads, "the page fetched the file to draw histograms"
    flow.shoot(page, "dataset")
    page.goto(flow.base_url + "/ui/datasets")
    expect(page.locator("#dataset-list table")).to_be_visible()
    flow.shoot(page, "datasets")


def train_and_watch(page: Page, flow: Flow) -> None:
    page.goto(flow.base_url + flow.visited["dataset"])
    page.get_by_role("link", name="Train a model").click()
    expect(page.get_by_label("Target column")).to_have_value("label")
    page.get_by_label("Epochs").fill(str(EPOCHS))
    page.get_by_label("Batch size").fill("16")
    page.get_by_label("Early-stopping patience").fill("0")
    flow.shoot(page, "train-form")
    page.get_by_role("button", name="Start training").click()
    expect(page).to_have_url(re.compile(r"/ui/jobs/[0-9a-f-]{36}$"))
    chart = page.locator("#job-chart")
    expect(chart).to_have_attribute("data-status", "running", timeout=TRAINING_SECONDS * 1000)
    wait_until(page, "Number(document.querySelector('#job-chart').dataset.points) > 0")
    first = points(page)
    # Polled in the page, so the growth is seen while the status still says running.
    wait_until(
        page,
        "([first]) => { const chart = document.querySelector('#job-chart');"
        " return Number(chart.dataset.points) > first && chart.dataset.status === 'running'; }",
        arg=[first],
    )
    expect(page.locator("#job-summary progress")).not_to_have_attribute("value", "0")
    flow.shoot(page, "job-running")
    expect(chart).to_have_attribute("data-status", "succeeded", timeout=TRAINING_SECONDS * 1000)
    expect(page.locator("#job-summary .badge")).to_have_text("succeeded")
    assert points(page) >= 2 * EPOCHS, "a finished job shows every epoch's two losses"
    flow.shoot(page, "job-finished")


def browse_models(page: Page, flow: Flow) -> None:
    page.goto(flow.base_url + "/ui/jobs")
    pick = page.locator("#job-list input[name=job]").first
    pick.check()
    with page.expect_response(lambda response: "/ui/fragments/jobs" in response.url):
        pass  # the list refreshes itself every few seconds; a choice survives that
    page.wait_for_timeout(200)
    expect(pick).to_be_checked()
    flow.shoot(page, "jobs")
    page.get_by_role("button", name="Compare selected").click()
    wait_until(page, "Number(document.querySelector('#compare-chart').dataset.points) > 0")
    flow.shoot(page, "compare")
    page.goto(flow.base_url + flow.visited["job-finished"])
    page.get_by_role("link", name="Model", exact=True).click()
    expect(page.locator("table.heatmap")).to_be_visible()
    flow.shoot(page, "model")
    page.get_by_role("link", name="All versions").click()
    page.get_by_role("button", name="Point alias").click()
    expect(page.locator("#registry .badge.alias").first).to_have_text("production")
    flow.shoot(page, "registry")
    # A stale access token: the fragments' 401 makes the page spend the refresh token.
    spent = page.evaluate("localStorage.getItem('dlp.refresh')")
    page.evaluate("localStorage.setItem('dlp.access', 'stale')")
    page.goto(flow.base_url + "/ui/models")
    expect(page.get_by_role("link", name=re.compile(r"^signals-label$"))).to_be_visible()
    assert page.evaluate("localStorage.getItem('dlp.refresh')") != spent
    flow.shoot(page, "models")
    page.goto(flow.base_url + "/ui/studies")
    flow.shoot(page, "studies")


def predict_in_playground(page: Page, flow: Flow) -> None:
    page.goto(flow.base_url + flow.visited["model"])
    page.get_by_role("link", name="Try it").click()
    for name, value in PLAYGROUND_ROW.items():
        page.locator(f"#row-form input[name={name}]").fill(str(value))
    page.get_by_role("button", name="Predict", exact=True).click()
    answer = page.locator("#prediction")
    expect(answer).to_be_visible()
    expect(answer.locator("tbody td").nth(1)).to_have_text("yes")
    flow.shoot(page, "playground")


def shoot_phone_pages(browser: Browser, flow: Flow, storage: Any) -> None:
    context = browser.new_context(viewport=PHONE, storage_state=storage)
    try:
        page = context.new_page()
        flow.watch(page)
        for name, path in flow.visited.items():
            if name in {"login", "register"}:
                continue
            page.goto(flow.base_url + path)
            page.wait_for_load_state("networkidle")
            page.screenshot(path=flow.screenshots / f"phone-{name}.png", full_page=True)
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"{path} is {width}px wide on a phone"
    finally:
        context.close()


def test_register_upload_train_watch_predict(
    browser: Browser, screenshot_dir: Path, tmp_path: Path
) -> None:
    write_training_csv(tmp_path / "signals.csv")
    started = time.monotonic()
    with live_server(tmp_path / "data") as server:
        flow = Flow(server.url, screenshot_dir)
        context = browser.new_context(viewport=DESKTOP)
        context.set_default_timeout(30_000)
        try:
            page = context.new_page()
            flow.watch(page)
            register_and_upload(page, flow, tmp_path / "signals.csv")
            train_and_watch(page, flow)
            browse_models(page, flow)
            predict_in_playground(page, flow)
            storage = context.storage_state()
        finally:
            context.close()
        shoot_phone_pages(browser, flow, storage)
    print(f"\nweb flow took {time.monotonic() - started:.1f}s; screenshots: {screenshot_dir}")
    assert not flow.errors, flow.errors
