"""The forecast page in a real browser: `streamlit run` on 127.0.0.1 against the fake
service, driven by Debian's headless Chromium through Playwright; the screenshot the README
shows is taken here."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from comfort_assets_tests.serving_fixtures import free_port
from comfort_assets_tests.ui_fixtures import VERSION, clean_days, fake_service, ingest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
#: test artefacts go under the ignored `.test-artifacts/`; COMFORT_UPDATE_SCREENSHOTS=1 refreshes
#: the copy the README shows
ARTIFACTS = ROOT / ".test-artifacts"
README_SCREENSHOT = ROOT / "docs" / "screenshots" / "forecast_page.png"
SCREENSHOT = ARTIFACTS / "forecast_page.png"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture
def page_url(tmp_path) -> Iterator[tuple[str, object]]:
    """`streamlit run` (offline, headless) on a free port; yields its URL and the fake."""
    ingest(tmp_path, clean_days())
    port = free_port()
    with fake_service() as fake:
        env = {**os.environ, "COMFORT_ENV": "local", "COMFORT_HOME": str(tmp_path)}
        log = (tmp_path / "streamlit.log").open("wb")
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "comfort_assets" / "ui" / "app.py"),
                "--server.headless",
                "true",
                "--browser.gatherUsageStats",
                "false",
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--server.fileWatcherType",
                "none",
                "--",
                "--service",
                fake.url,
            ],
            cwd=ROOT,  # its .streamlit/config.toml, as a user runs it
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((tmp_path / "streamlit.log").read_text()[-2000:])
                time.sleep(0.3)
            yield url, fake
        finally:
            process.terminate()
            process.wait(10)
            log.close()


def test_the_page_forecasts_in_a_real_browser(page_url):
    from playwright.sync_api import expect, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("needs Debian's chromium: apt-get install -y chromium")
    url, fake = page_url
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.goto(url)
            expect(page.get_by_text(f"Serving {VERSION}")).to_be_visible(timeout=60_000)
            page.get_by_role("button", name="Forecast", exact=True).click()
            expect(page.get_by_text("DI forecast")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("EWR at 2013-07-08 18:00 UTC (3 h ahead)")).to_be_visible()
            expect(page.locator("[data-testid='stVegaLiteChart']")).to_be_visible()
            page.get_by_text("4", exact=True).click()
            page.get_by_role("button", name="Send feedback").click()
            expect(page.get_by_text("feedback stored for this prediction")).to_be_visible()
            page.wait_for_timeout(1000)  # let the chart finish drawing
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert len(fake.bodies("/predict")) == 1
    (feedback,) = fake.bodies("/feedback")
    assert feedback == {"prediction_id": next(iter(fake.predictions)), "rating": 4}
    assert SCREENSHOT.stat().st_size > 20_000
    if os.environ.get("COMFORT_UPDATE_SCREENSHOTS") == "1":
        README_SCREENSHOT.write_bytes(SCREENSHOT.read_bytes())
