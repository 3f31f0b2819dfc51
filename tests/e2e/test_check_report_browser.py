"""The HTML check report of a real check, opened in headless Chromium: what a reader would see.

Assertions run on the rendered page (DOM queries and laid-out sizes in the browser), not on the
file's text. A screenshot of it is saved next to the test's files.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from browser import chromium, require_chromium, screenshot
from e2e_cli import Demo, Trueup

from trueup.products import PRODUCT_FIELDS, PRODUCTS

FIELDS = [f for f in PRODUCT_FIELDS.values() if f != PRODUCT_FIELDS["key"]]

BARS = """
return Array.from(document.querySelectorAll('#field-agreement g.bar-row')).map(row => {
  const width = (css) => {
    const rect = row.querySelector(css);
    return rect ? rect.getBoundingClientRect().width : 0;
  };
  const label = row.querySelector('text.label').getBoundingClientRect();
  return {
    field: row.dataset.label,
    agree: width('rect.bar.agree'),
    differ: width('rect.bar.differ'),
    track: width('rect.track'),
    label_width: label.width,
    label_height: label.height,
  };
});
"""


def test_html_report_renders_its_charts_in_chromium(
    demo: Demo, trueup: Trueup, tmp_path: Path
) -> None:
    require_chromium()
    first = trueup("check", "--json")  # a check before: the trend shows two
    assert first.code == 8, first.err
    figures: dict[str, Any] = first.json()
    written = trueup("check", "--format", "html", "--out", "report.html")
    assert written.code == 8, written.err
    assert "Wrote the html report to report.html" in written.out

    started = time.perf_counter()
    with chromium() as driver:
        driver.get((demo.dir / "report.html").as_uri())
        assert driver.title == "trueup check: sql:Product_Property__c"
        assert driver.find_element("id", "verdict").text == "FAILED"
        accuracy = driver.find_element("css selector", "#card-accuracy .figure")
        assert accuracy.is_displayed() and accuracy.text == f"{figures['accuracy']:.2f}%"

        # one bar per compared field, drawn as wide as its agreement
        bars = driver.execute_script(BARS)
        assert [b["field"] for b in bars] == FIELDS
        for bar in bars:
            assert bar["track"] > 300 and bar["label_width"] > 0 and bar["label_height"] > 0
            agreement = figures["field_agreement"][bar["field"]]
            assert abs(bar["agree"] / bar["track"] * 100 - agreement) < 1, bar
            differs = figures["field_mismatches"][bar["field"]] > 0
            assert (bar["differ"] > 0) is differs, bar
        fraud = driver.find_element(
            "xpath",
            "//*[@id='field-agreement']//*[local-name()='text' and "
            "text()='Fraud_Detection_Enabled__c']",
        )
        assert fraud.is_displayed()

        # mismatches by product: every product, the worst first
        products = driver.execute_script(
            "return Array.from(document.querySelectorAll('#product-mismatches g.bar-row'))"
            ".map(g => g.dataset.label)"
        )
        assert {p.code for p in PRODUCTS} <= set(products)
        worst = max(figures["product_mismatches"].items(), key=lambda item: item[1])
        assert products[0] == worst[0]

        # the trend: one point per stored check
        points = driver.find_elements("css selector", "#accuracy-trend circle.point")
        assert len(points) == 2 and all(p.is_displayed() for p in points)

        # bounded tables with their counts
        missing = driver.find_element("id", "missing")
        assert f"Missing in destination: {len(figures['missing_in_destination']):,}" in (
            missing.text
        )
        png = screenshot(driver)
    took = time.perf_counter() - started
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 50_000
    (tmp_path / "check-report.png").write_bytes(png)
    assert took < 60, f"Chromium took {took:.1f}s"
