"""The product as a person sees it, in Debian's headless Chromium driven by Playwright, every
server on 127.0.0.1 and nothing else reachable: the forecast page (`streamlit run` against the
fake service), the Dagster UI on a materialized graph, and the Bento's Swagger page. The
screenshots the README shows are taken here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from comfort_assets.processes import stop_process_group
from comfort_assets.serving.schemas import DOCUMENT_TITLE
from comfort_assets_tests.serving_fixtures import bento_server, free_port, register_champion
from comfort_assets_tests.ui_fixtures import VERSION, clean_days, fake_service, ingest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
#: test artefacts go under the ignored `.test-artifacts/`; COMFORT_UPDATE_SCREENSHOTS=1 refreshes
#: the copies the README shows
ARTIFACTS = ROOT / ".test-artifacts"
README_SCREENSHOTS = ROOT / "docs" / "screenshots"
SCREENSHOT = ARTIFACTS / "forecast_page.png"
#: a laptop's window: the README's screenshots stay readable and small
WINDOW = {"width": 1400, "height": 900}
#: the plots `evaluation_report` shows (`reporting.evaluation_plots`), by their alt text
EVALUATION_PLOTS = ("predicted_vs_actual", "error_by_month", "feature_importance")
#: any request that would leave 127.0.0.1 (BentoML's page asks Google Tag Manager and badge
#: hosts): refused, the tests run without network
OFF_MACHINE = re.compile(r"^(?!https?://127\.0\.0\.1[:/])[a-z]+://")
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def wait_until_up(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    """Until ``url`` answers 200; the server's log tail if it exits or takes too long."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text()[-2000:])
        time.sleep(0.3)


@contextmanager
def chromium_page(**options) -> Iterator:
    """A page in headless Debian Chromium that cannot reach beyond 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("needs Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(**options)
            page.route(OFF_MACHINE, lambda route: route.abort())
            yield page
        finally:
            browser.close()


def keep_screenshot(page, name: str, **options) -> Path:
    """The page as ``.test-artifacts/NAME``."""
    path = ARTIFACTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), **options)
    return path


def publish(screenshot: Path) -> None:
    """With COMFORT_UPDATE_SCREENSHOTS=1, the README's copy of a screenshot whose test passed."""
    if os.environ.get("COMFORT_UPDATE_SCREENSHOTS") == "1":
        (README_SCREENSHOTS / screenshot.name).write_bytes(screenshot.read_bytes())


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
            wait_until_up(f"{url}/_stcore/health", process, tmp_path / "streamlit.log", 60)
            yield url, fake
        finally:
            process.terminate()
            process.wait(10)
            log.close()


def test_the_page_forecasts_in_a_real_browser(page_url):
    from playwright.sync_api import expect

    url, fake = page_url
    with chromium_page(viewport={"width": 1280, "height": 1600}) as page:
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
        keep_screenshot(page, SCREENSHOT.name, full_page=True)
    assert len(fake.bodies("/predict")) == 1
    (feedback,) = fake.bodies("/feedback")
    assert feedback == {"prediction_id": next(iter(fake.predictions)), "rating": 4}
    assert SCREENSHOT.stat().st_size > 20_000
    publish(SCREENSHOT)


@pytest.fixture(scope="module")
def dagster_ui(pipeline_home) -> Iterator[str]:
    """`dagster-webserver` on the workspace, its instance the one `comfort run` materialized
    the graph into (what README's `dg dev` shows a user); the code server in its process
    group goes with it."""
    home, env = pipeline_home
    port = free_port()
    log_path = home / f"dagster-webserver-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dagster_webserver",
                "-w",
                "workspace.yaml",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
            ],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(f"{url}/server_info", process, log_path, 180)
            yield url
        finally:
            stop_process_group(process, timeout=30)


def assert_uncovered(locator) -> None:
    """What is on screen at the centre of ``locator`` is that element: no pop-up over it."""
    locator.scroll_into_view_if_needed()
    covering = locator.evaluate(
        """el => {
            const box = el.getBoundingClientRect();
            const top = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            return el.contains(top) ? null : (top ? top.outerHTML : "nothing").slice(0, 300);
        }"""
    )
    assert covering is None, f"{locator} is covered by {covering}"


def test_the_asset_graph_renders_in_dagster(dagster_ui):
    from playwright.sync_api import expect

    with chromium_page(viewport=WINDOW) as page:
        page.goto(f"{dagster_ui}/asset-groups")
        graph = page.locator("svg")
        expect(graph.get_by_text("evaluation", exact=True)).to_be_visible(timeout=120_000)
        page.keyboard.press("Alt+KeyE")  # the graph settings' "Expand all groups" (⌥E)
        for asset in ("raw_weather", "comfort_features", "evaluation_report", "champion_model"):
            node = graph.get_by_text(asset, exact=True)
            expect(node).to_be_visible(timeout=60_000)
            # green once the UI has the latest materialization (what the screenshot shows)
            expect(node.locator("xpath=..")).to_have_attribute(
                "style",
                re.compile(r"--minimal-bg: var\(--color-background-green\)"),
                timeout=60_000,
            )
            assert_uncovered(node)  # e.g. by Dagster's "Join the Dagster community"
        screenshot = keep_screenshot(page, "asset_graph.png")
    assert screenshot.stat().st_size > 20_000
    publish(screenshot)


def test_the_evaluation_plot_is_one_click_from_its_asset_page(dagster_ui):
    from playwright.sync_api import expect

    with chromium_page(viewport=WINDOW) as page:
        page.goto(f"{dagster_ui}/assets/evaluation_report")
        plots = page.get_by_role("row").filter(
            has=page.get_by_role("cell", name="plots", exact=True)
        )
        show = plots.get_by_text("Show Markdown")
        expect(show).to_be_visible(timeout=120_000)
        assert_uncovered(show)
        show.click()
        dialog = page.get_by_role("dialog")
        plot = dialog.get_by_role("img", name=EVALUATION_PLOTS[0])
        expect(plot).to_be_visible(timeout=30_000)
        page.wait_for_function("img => img.complete", arg=plot.element_handle())
        drawn = dialog.locator("img").evaluate_all(
            "images => Object.fromEntries(images.map(i => [i.alt, i.naturalWidth]))"
        )
        assert set(drawn) == set(EVALUATION_PLOTS) and min(drawn.values()) > 0, drawn
        assert_uncovered(plot)
        screenshot = keep_screenshot(page, "evaluation_plot.png")
    assert screenshot.stat().st_size > 20_000
    publish(screenshot)


@pytest.fixture(scope="module")
def served_champion(tmp_path_factory, bundled_clean) -> Iterator[tuple[str, str]]:
    """The real `bentoml serve` on a registered champion; its URL and version."""
    home = tmp_path_factory.mktemp("swagger-home")
    version = register_champion(home, bundled_clean.clean, seed=0, trees=20)
    with bento_server(home) as url:
        yield url, version


def test_the_swagger_page_names_the_service_and_its_champion(served_champion):
    from playwright.sync_api import expect

    url, version = served_champion
    with chromium_page(viewport=WINDOW) as page:
        page.goto(url)  # BentoML's Swagger UI, its scripts served by the Bento itself
        # BentoML's stylesheet hides the document's title and shows the description's heading
        title = page.get_by_role("heading", name=DOCUMENT_TITLE, exact=True)
        expect(title).to_be_visible(timeout=60_000)
        badge = page.locator(".information-container .title small:not(.version-stamp) .version")
        expect(badge).to_be_visible()
        expect(badge).to_have_text(version)
        predict = page.locator(".opblock-post .opblock-summary-path[data-path='/predict']")
        expect(predict).to_be_visible()
        expect(page.get_by_text("comfort_forecast:dev")).to_have_count(0)
        screenshot = keep_screenshot(page, "swagger_page.png")
    assert screenshot.stat().st_size > 20_000
