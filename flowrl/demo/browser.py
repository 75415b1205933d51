"""Driving the demo page in headless Debian Chromium with Playwright (the browser test and the screenshot script).

Needs the Playwright Python package (its bundled browsers are NOT used: never run ``playwright install``) and
Debian's ``chromium`` at `CHROMIUM`. The flags turn off Chromium's background connections, which are refused on a
machine without network and would otherwise stall the start.
"""

from __future__ import annotations

import contextlib
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import gradio as gr

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
TIMEOUT_MS = 120_000


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(demo: gr.Blocks) -> Iterator[str]:
    """Launch `demo` on a free loopback port in this process; yields its URL and closes it afterwards."""
    port = free_port()
    demo.queue(default_concurrency_limit=1).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@contextlib.contextmanager
def chromium_page(width: int = 1200, height: int = 1000) -> Iterator[object]:
    """A fresh Playwright page in headless `CHROMIUM` with its own throw-away user-data dir."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="flowrl-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            context.close()


def wait_for_status(page, elem_id: str, pattern: str) -> str:
    """Wait until the status textbox `elem_id` holds text matching the regular expression `pattern`; return it."""
    from playwright.sync_api import expect

    box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
    expect(box).to_have_value(re.compile(pattern), timeout=TIMEOUT_MS)
    return box.input_value()


def generate_in_page(page, url: str, prompt: str, *, seed: int | None = None) -> str:
    """Open the page, type `prompt` (and `seed`), click Generate, wait for the result; return the status line."""
    page.goto(url)
    page.locator("#prompt textarea, #prompt input").first.fill(prompt)
    if seed is not None:
        page.locator("#seed input").first.fill(str(seed))
    page.locator("#generate").click()
    return wait_for_status(page, "status", "^Generated " + re.escape(repr(prompt)))
