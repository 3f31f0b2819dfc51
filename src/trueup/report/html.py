"""The check report as one self-contained HTML page: inline CSS and SVG, nothing fetched.

Headline accuracy and verdict, the thresholds, agreement per field, mismatches by product, the
trend of accuracy over past checks (from the run store), and bounded tables of mismatched fields,
missing, extra and invalid records, each with its full count. Every value from data is escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

import pyarrow.compute as pc

from trueup import __version__
from trueup.check import CheckReport, MismatchKind, ThresholdName, stored_check
from trueup.report.svg import BarRow, TrendPoint, bar_chart, trend_chart
from trueup.store.values import StoredCheck

ROW_LIMIT = 200  # mismatched fields shown in the page (the CSV has every one)
KEY_LIMIT = 100  # keys shown per list of missing, extra or invalid records

_STYLE = """
:root { --ok: #2e7d32; --bad: #c62828; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink);
       margin: 0; background: #f6f8fa; }
main { max-width: 1100px; margin: 0 auto; padding: 24px; }
header h1 { margin: 0 0 4px; font-size: 24px; }
.meta { color: var(--muted); margin: 0; }
.verdict { display: inline-block; padding: 2px 10px; border-radius: 12px; color: #fff;
           font-weight: 600; font-size: 13px; vertical-align: middle; margin-left: 8px; }
.verdict.pass { background: var(--ok); } .verdict.fail { background: var(--bad); }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px;
         margin: 20px 0; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .figure { font-size: 24px; font-weight: 600; }
.card .figure.pass { color: var(--ok); } .card .figure.fail { color: var(--bad); }
.card .what { color: var(--muted); font-size: 12px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px;
          margin: 16px 0; overflow-x: auto; }
section h2 { font-size: 17px; margin: 0 0 4px; }
section p.note { color: var(--muted); margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line);
         vertical-align: top; }
th { background: #f6f8fa; } td.num, th.num { text-align: right; }
td.value { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; word-break: break-all; }
td.null { color: var(--muted); font-style: italic; }
.ok { color: var(--ok); font-weight: 600; } .bad { color: var(--bad); font-weight: 600; }
svg.chart { display: block; max-width: 100%; height: auto; }
svg .label, svg .value, svg .axis, svg .empty { font: 12px system-ui, sans-serif;
                                                fill: var(--ink); }
svg .axis { fill: var(--muted); }
svg .track { fill: #eef1f4; }
svg .bar.agree { fill: var(--ok); } svg .bar.differ { fill: var(--bad); }
svg .bar.product { fill: #d9822b; }
svg .grid { stroke: #e5e9ee; } svg .threshold { stroke: var(--bad); stroke-dasharray: 5 4; }
svg .trend-line { fill: none; stroke: #1565c0; stroke-width: 2; }
svg .point.pass { fill: var(--ok); } svg .point.fail { fill: var(--bad); }
footer { color: var(--muted); font-size: 12px; text-align: center; margin: 24px 0; }
"""


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def check_html(report: CheckReport, *, history: Sequence[StoredCheck] = ()) -> str:
    """The whole page; ``history`` (oldest first) is the trend, this check alone when empty."""
    past = list(history) or [stored_check(report)]
    min_accuracy = next(
        (t.limit for t in report.thresholds if t.name is ThresholdName.MIN_ACCURACY), 100.0
    )
    verdict = "pass" if report.passed else "fail"
    title = f"trueup check: {report.destination or 'destination'}"
    body = [
        "<header>",
        f'<h1>{_e(title)}<span class="verdict {verdict}" id="verdict">'
        f"{'PASSED' if report.passed else 'FAILED'}</span></h1>",
        f'<p class="meta">Checked {_e(report.checked_at.strftime("%Y-%m-%d %H:%M:%S UTC"))}'
        f" · config {_e(report.config_fingerprint)} · source and destination read at that time"
        "</p>",
        "</header>",
        _cards(report),
        _thresholds(report),
        _section(
            "field-agreement-section",
            "Agreement per field",
            f"Share of the {report.matched:,} records present on both sides whose field agrees "
            "with the source.",
            bar_chart("field-agreement", "Agreement per field", _field_rows(report), scale=100),
        ),
        _section(
            "product-mismatches-section",
            "Mismatches by product",
            "Records on both sides that differ in at least one of the product's fields "
            "(fields that belong to no product stand for themselves).",
            _product_chart(report),
        ),
        _section(
            "trend-section",
            "Accuracy over past checks",
            (f"The last {len(past):,} checks" if len(past) > 1 else "The last check")
            + f" of {report.destination or 'this destination'} kept in the run store (UTC).",
            trend_chart(
                "accuracy-trend",
                "Accuracy over past checks",
                [TrendPoint(c.checked_at, c.accuracy, c.passed) for c in past],
                min_accuracy=min_accuracy,
            ),
        ),
        _mismatch_table(report),
        _key_table(
            "missing",
            "Missing in destination",
            "Valid source records with no destination record (apply creates them).",
            [(k,) for k in report.missing_in_destination],
            ("key",),
        ),
        _key_table(
            "extra",
            "Extra in destination",
            "Destination records whose key is not in the source (left alone).",
            [(k,) for k in report.extra_in_destination],
            ("key",),
        ),
        _key_table(
            "invalid",
            "Invalid in source",
            "Source records that cannot be compared or sent, with the reason.",
            [(k if k is not None else "(null key)", r) for k, r in report.invalid],
            ("key", "reason"),
        ),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + f"\n<footer>Written by trueup {_e(__version__)}.</footer>\n</main>\n</body>\n</html>\n"
    )


def _cards(report: CheckReport) -> str:
    verdict = "pass" if report.passed else "fail"
    cards = [
        (f"{report.accuracy:.2f}%", "accuracy", verdict, "accuracy"),
        (f"{report.compared:,}", "source records compared", "", "compared"),
        (f"{report.agreeing:,}", "agree field for field", "", "agreeing"),
        (f"{len(report.missing_in_destination):,}", "missing in destination", "", "missing"),
        (f"{len(report.extra_in_destination):,}", "extra in destination", "", "extra"),
        (f"{len(report.invalid):,}", "invalid in source", "", "invalid"),
    ]
    if report.multi_member_groups is not None:
        cards.append(
            (
                f"{report.multi_member_agreeing or 0:,} / {report.multi_member_groups:,}",
                "multi-member groups agreeing",
                "",
                "multi-member",
            )
        )
    items = "".join(
        f'<div class="card" id="card-{_e(key)}"><div class="figure {css}">{_e(figure)}</div>'
        f'<div class="what">{_e(what)}</div></div>'
        for figure, what, css, key in cards
    )
    return f'<div class="cards">{items}</div>'


def _thresholds(report: CheckReport) -> str:
    rows = "".join(
        f"<tr><td>{_e(t.name.value)}</td><td>{_e(t.describe())}</td>"
        f'<td class="{"ok" if t.passed else "bad"}">{"held" if t.passed else "failed"}</td></tr>'
        for t in report.thresholds
    )
    table = f"<table><tr><th>setting</th><th>result</th><th></th></tr>{rows}</table>"
    note = "The exit code is 8 when any threshold fails, 0 when all hold."
    return _section("thresholds", "Thresholds", note, table)


def _field_rows(report: CheckReport) -> list[BarRow]:
    rows = []
    for name, pct in report.field_agreement().items():
        differ = report.field_mismatches[name]
        rows.append(
            BarRow(
                label=name,
                segments=((pct, "agree"), (100.0 - pct, "differ")),
                caption=f"{pct:.2f}% · {differ:,} differ",
                tooltip=f"{name} ({report.field_products.get(name, name)}): {pct:.2f}% agree, "
                f"{differ:,} records differ",
            )
        )
    return rows


def _product_chart(report: CheckReport) -> str:
    counts = report.product_mismatches
    rows = [
        BarRow(
            label=product,
            segments=((n, "product"),),
            caption=f"{n:,} records",
            tooltip=f"{product}: {n:,} records differ",
        )
        for product, n in sorted(counts.items(), key=lambda item: -item[1])
    ]
    return bar_chart(
        "product-mismatches", "Mismatches by product", rows, scale=max(counts.values(), default=0)
    )


def _mismatch_table(report: CheckReport) -> str:
    table = report.mismatches
    both = table.filter(pc.equal(table["kind"], MismatchKind.MISMATCH.value))
    shown = both.slice(0, ROW_LIMIT).to_pylist()
    rows = "".join(
        f"<tr><td>{_e(r['key'])}</td><td>{_e(r['field'])}</td><td>{_e(r['product'])}</td>"
        f"{_value_cell(r['source_value'])}{_value_cell(r['destination_value'])}</tr>"
        for r in shown
    )
    head = "<tr><th>key</th><th>field</th><th>product</th><th>source</th><th>destination</th></tr>"
    note = (
        f"{both.num_rows:,} fields differ on records present on both sides. "
        f"{_showing(len(shown), both.num_rows)} "
        "Every row, with the fields of missing records, is in 'trueup check --format csv'."
    )
    return _section(
        "mismatches", "Mismatched fields", note, f'<table id="mismatch-table">{head}{rows}</table>'
    )


def _value_cell(value: str | None) -> str:
    if value is None:
        return '<td class="value null">null</td>'
    return f'<td class="value">{_e(value)}</td>'


def _key_table(
    section_id: str, title: str, note: str, rows: Sequence[tuple[str, ...]], columns: Iterable[str]
) -> str:
    shown = rows[:KEY_LIMIT]
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row) + "</tr>" for row in shown)
    text = f"{len(rows):,} records. {_showing(len(shown), len(rows))} {note}"
    table = f'<table id="{_e(section_id)}-table"><tr>{head}</tr>{body}</table>' if rows else ""
    return _section(section_id, f"{title}: {len(rows):,}", text, table)


def _showing(shown: int, total: int) -> str:
    if total == 0:
        return ""
    return f"Showing all {total:,}." if shown >= total else f"Showing the first {shown:,}."


def _section(section_id: str, title: str, note: str, content: str) -> str:
    return (
        f'<section id="{_e(section_id)}"><h2>{_e(title)}</h2>'
        f'<p class="note">{_e(note)}</p>{content}</section>'
    )
