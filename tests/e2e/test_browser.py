"""The dashboard in headless Chromium against a real daemon training the tiny model.

Needs Debian's chromium (/usr/bin/chromium) and the `playwright` Python package (its driver only:
no browser is downloaded). `.ci/run` installs both and sets TRAINERD_REQUIRE_BROWSER=1, so in CI
this test runs or fails; on a machine without them it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

import pytest

from tests.e2e.daemon_helpers import (
    FAST_SETTINGS,
    daemon_log,
    drop,
    init_base,
    start_daemon,
    status,
    trainerd,
    write_data,
)
from tests.e2e.daemon_helpers import wait_until as wait_for

CHROMIUM = os.environ.get("TRAINERD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]  # fmt: skip


def browser_or_skip():  # type: ignore[no-untyped-def]
    required = os.environ.get("TRAINERD_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (pip install playwright; no browser download needed)")
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        if required:
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_playwright


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dashboard_shows_live_training_and_pauses_the_daemon(tmp_path: Path) -> None:
    sync_playwright = browser_or_skip()
    base = init_base(tmp_path / "base", settings=(*FAST_SETTINGS, "hyperparams.num_epochs=60"))
    token = (base / "monitor.token").read_text().strip()
    port = free_port()
    drop(base, write_data(tmp_path / "long.jsonl", 400, seed=9), "long.jsonl")  # 3,000 steps: still running at pause
    daemon = start_daemon(base, "--monitor", "--port", str(port))
    screenshot = Path(os.environ.get("TRAINERD_ARTIFACTS", tmp_path)) / "dashboard.png"
    try:
        wait_for(lambda: status(base).get("state") == "training", what="training to start")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"http://127.0.0.1:{port}/#token={token}")

            def shown_state() -> str | None:
                return page.get_attribute("#state", "data-state")

            def points() -> int:
                return int(page.get_attribute("#loss-chart", "data-points") or 0)

            # polled from here: the page's Content Security Policy forbids evaluating script strings
            wait_for(lambda: shown_state() == "training", timeout=60, what="page to show training")
            first = wait_for(points, timeout=60, what="loss points")
            wait_for(lambda: points() > first, timeout=60, what="the loss plot to gain points while training")
            page.click("#btn-pause")
            wait_for(lambda: shown_state() == "paused", timeout=60, what="page to show paused")
            # the daemon really paused: its engine checkpointed and exited, and the step stands still
            wait_for(lambda: status(base).get("state") == "paused", timeout=30, what="daemon paused")
            run_dir = next((base / "runs").iterdir())
            result = json.loads((run_dir / "result.json").read_text())
            assert result["stopped"] == "pause" and result["checkpoint"]
            page.wait_for_timeout(1500)
            assert json.loads((run_dir / "result.json").read_text())["steps"] == result["steps"]
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            assert page.is_enabled("#btn-resume")
            assert not errors, errors
            browser.close()
        assert screenshot.stat().st_size > 10_000
    finally:
        trainerd("stop", "--base-dir", str(base))
        try:
            daemon.wait(timeout=120)
        except Exception:
            daemon.kill()
            raise
    assert daemon.returncode == 0, daemon_log(base)[-3000:]
