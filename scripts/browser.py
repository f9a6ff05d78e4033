"""Start the app on a free local port and drive Debian's Chromium with Playwright.

Shared by the end-to-end tests and the screenshot script.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("PACKVIZ_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which
# a closed network refuses many times a second.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(timeout_s: float = 90.0) -> Iterator[str]:
    """Serve app.py on 127.0.0.1 and yield its URL; stop it afterwards."""
    with serve_app(free_port(), timeout_s=timeout_s) as (url, _):
        yield url


@contextlib.contextmanager
def serve_app(port: int, env: dict[str, str] | None = None, timeout_s: float = 90.0,
              script: Path = ROOT / "app.py") -> Iterator[tuple[str, float]]:
    """The app (``python -m ui.serve``, or ``streamlit run script``) on 127.0.0.1:port (with
    ``env``, default this process's); yields the URL and the seconds until its health
    check answered."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryFile() as log:
        started = time.perf_counter()
        # the app through its launcher, as `make run` serves it (ui.serve: the imports first)
        command = ([sys.executable, "-m", "ui.serve"] if script == ROOT / "app.py"
                   else [sys.executable, "-m", "streamlit", "run", str(script)])
        process = subprocess.Popen(
            [*command, "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env,
        )
        try:
            _wait_for_health(url, process, log, timeout_s)
            yield url, time.perf_counter() - started
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_health(url: str, process: subprocess.Popen, log, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise RuntimeError(f"the app did not start:\n{log.read().decode(errors='replace')[-3000:]}")
        time.sleep(0.1)


@contextlib.contextmanager
def chromium_page(width: int = 1500, height: int = 1100, color_scheme: str = "light") -> Iterator[object]:
    """A Playwright page in headless Debian Chromium (no browser download);
    ``color_scheme`` "dark" is a browser that prefers dark (Streamlit follows it)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True,
                                          color_scheme=color_scheme)
            page = context.new_page()
            page.set_default_timeout(90_000)
            yield page
        finally:
            browser.close()


def wait_until_idle(page, timeout_ms: int = 120_000) -> None:
    """Wait for Streamlit to finish its run (no running indicator, charts drawn)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout_ms)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
        timeout=timeout_ms,
    )


@contextlib.contextmanager
def busy_core() -> Iterator[None]:
    """Another process keeping one core busy (a Python loop) meanwhile: the benchmarks' busy machine."""
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        burner.kill()
        burner.wait()
