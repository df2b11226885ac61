"""The console: its feeds behind the admin token, the feed's fan-out, and the page in a real
headless Chromium (Debian's ``chromium`` and ``chromedriver``) showing a request made meanwhile."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fastgate.observability.feed import RING, Feed
from tests.conftest import Gateway, Upstream, openai_headers

TOKEN = "console-admin-secret"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-extensions",
    "--window-size=1400,1000",
)


def entry(n: int) -> bytes:
    return b'{"trace_id":"id-%d","route":"/v1/chat/completions","status":200}' % n


async def test_the_feed_keeps_nothing_until_a_console_connects() -> None:
    feed = Feed()
    assert not feed.active
    sub = feed.subscribe()
    assert feed.active
    for n in range(RING + 5):
        feed.publish(entry(n))
    assert len(feed.ring) == RING
    batch = await sub.next_batch(0.01)
    assert len(batch) == RING + 5 and b'"id-0"' in batch[0]
    late = feed.subscribe()  # starts with the recent ones
    assert len(await late.next_batch(0.01)) == RING
    feed.unsubscribe(sub)
    feed.unsubscribe(late)
    assert not feed.active and not feed.ring
    assert await sub.next_batch(0.01) == []


@pytest.fixture
async def console(make_gateway: Any) -> Gateway:
    gateway: Gateway = await make_gateway(admin_token=TOKEN, access_log=None)
    return gateway


async def test_the_page_is_public_and_its_data_needs_the_token(console: Gateway, upstream: Upstream) -> None:
    page = await console.get("/console")
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    html = await page.text()
    assert TOKEN not in html and "http" not in html.replace("http-equiv", "")  # nothing from elsewhere
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    script = await console.get("/console/static/console.js")
    assert script.status == 200 and "sessionStorage" in await script.text()
    assert (await console.get("/console/static/../app.py")).status == 404
    for path in ("/console/api/snapshot", "/console/api/feed"):
        assert (await console.get(path)).status == 401
        assert (await console.get(path, {"Authorization": "Bearer wrong"})).status == 401
    await console.post("/v1/chat/completions", CHAT, openai_headers(upstream))
    snap = await console.get("/console/api/snapshot", {"Authorization": f"Bearer {TOKEN}"})
    assert snap.status == 200
    data = await snap.json()
    # The request for a file outside the console's folder found no route: counted, as a 404.
    assert data["requests"] == 2 and data["by_status"] == {"2xx": 1, "4xx": 1}
    assert data["tokens"]["input"] > 0 and data["cost_usd"] > 0
    assert data["latency"]["p50"] > 0 and data["overhead"]["p99"] >= data["overhead"]["p50"]


async def test_without_an_admin_token_the_data_is_refused(make_gateway: Any) -> None:
    gateway: Gateway = await make_gateway(access_log=None)
    resp = await gateway.get("/console/api/snapshot", {"Authorization": "Bearer anything"})
    assert resp.status == 403
    assert "FASTGATE_ADMIN_TOKEN" in (await resp.json())["error"]["message"]


async def test_the_feed_streams_requests_as_they_come(console: Gateway, upstream: Upstream) -> None:
    resp = await console.get("/console/api/feed", {"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert (await resp.content.readuntil(b"\n\n")).startswith(b":")
    headers = {**openai_headers(upstream), "x-portkey-trace-id": "feed-1"}
    await console.post("/v1/chat/completions", CHAT, headers)
    event = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    assert event.startswith(b"data: {") and b'"trace_id":"feed-1"' in event
    resp.close()


@pytest.fixture
def screenshots() -> Iterator[Path]:
    """Where the screenshot goes: ``$FASTGATE_SCREENSHOT_DIR`` (CI keeps it), else a tmp dir."""
    named = os.environ.get("FASTGATE_SCREENSHOT_DIR")
    if named:
        path = Path(named)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="fastgate-console-"))
    yield path


def _browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))


@pytest.mark.timeout(90)
@pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), reason="needs Debian's chromium"
)
async def test_the_console_in_a_real_browser(console: Gateway, upstream: Upstream, screenshots: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as seen
    from selenium.webdriver.support.ui import WebDriverWait

    driver = await asyncio.to_thread(_browser)
    try:

        def log_in() -> None:
            driver.get(console.url + "/console")
            wait = WebDriverWait(driver, 20)
            wait.until(seen.visibility_of_element_located((By.ID, "token"))).send_keys(TOKEN)
            driver.find_element(By.CSS_SELECTOR, "#login button[type=submit]").click()
            wait.until(seen.text_to_be_present_in_element((By.ID, "status"), "live"))

        await asyncio.to_thread(log_in)
        headers = {**openai_headers(upstream), "x-portkey-trace-id": "browser-trace-1"}
        assert (await console.post("/v1/chat/completions", CHAT, headers)).status == 200

        def feed_shows_it() -> None:
            wait = WebDriverWait(driver, 20)
            wait.until(seen.text_to_be_present_in_element((By.ID, "feed"), "browser-trace-1"))
            # The next snapshot counts it too.
            wait.until(lambda d: d.find_element(By.ID, "t-requests").text == "1")
            driver.save_screenshot(str(screenshots / "console.png"))

        await asyncio.to_thread(feed_shows_it)
        row = await asyncio.to_thread(lambda: driver.find_element(By.CSS_SELECTOR, "#feed tbody tr").text)
        assert "200" in row and "openai" in row and "gpt-4o-mini" in row

        def reload_keeps_the_session() -> None:
            driver.refresh()
            WebDriverWait(driver, 20).until(seen.text_to_be_present_in_element((By.ID, "status"), "live"))
            assert not driver.find_element(By.ID, "login").is_displayed()

        await asyncio.to_thread(reload_keeps_the_session)
        logs = await asyncio.to_thread(driver.get_log, "browser")
        assert [e for e in logs if e["level"] in ("SEVERE", "WARNING")] == []
        assert TOKEN not in await asyncio.to_thread(lambda: driver.current_url)
    finally:
        await asyncio.to_thread(driver.quit)
    assert (screenshots / "console.png").stat().st_size > 10_000
