"""Headless Chromium driven through chromedriver, for tests that look at a page as it renders.

Chromium and its driver come from Debian's packages (``chromium``, ``chromium-driver``; ``.ci/run``
installs them); selenium talks to the driver at its fixed path, so nothing is downloaded. Without
them a test skips with the reason, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import base64
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("TRUEUP_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("TRUEUP_CHROMEDRIVER", "/usr/bin/chromedriver"))
INSTALL_HINT = "apt-get install chromium chromium-driver (.ci/run does it)"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable() -> str | None:
    """Why headless Chromium cannot run here, or None when it can."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (path.exists() or shutil.which(str(path))):
            return f"{path} not found: {INSTALL_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[test]'"
    return None


def require_chromium() -> None:
    """Skip the calling test without Chromium; in CI, fail it."""
    reason = unavailable()
    if reason is None:
        return
    if _in_ci():
        pytest.fail(f"headless Chromium is required in CI: {reason}")
    pytest.skip(reason)


@contextmanager
def chromium(width: int = 1280, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium WebDriver with a ``width`` x ``height`` viewport; quit afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        driver.set_page_load_timeout(30)
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, *, height: float | None = None) -> bytes:
    """A PNG of the page from the top, ``height`` CSS pixels tall (default: the whole page)."""
    width = driver.execute_script("return document.documentElement.scrollWidth")
    if height is None:
        height = driver.execute_script("return document.documentElement.scrollHeight")
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    return base64.b64decode(shot["data"])
