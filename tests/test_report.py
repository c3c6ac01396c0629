"""The Snakemake report of a small mock campaign, read as a referee's browser would get it.

No browser: the report is one HTML file whose results are embedded as base64 data URIs; the
summary table page (results/report/summary.html) is decoded from it, its table parsed with the
standard library's HTMLParser and its embedded JSON rows compared with summary.csv read by
pandas with no options. The start page must carry the headline numbers and the level the
numbers have (mock), and the warnings of the single-replica system must reach both.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser

import pandas as pd
import pytest

from workflow_helpers import check_ok, snakemake, write_config

pytestmark = pytest.mark.workflow

CONFIG = {
    "systems": [{"size": [2, 2, 2]}, {"size": [3, 3, 3], "md": {"replicas": 1}}],
    "level": "pbe",  # the config's level; the mock's numbers are level mock and must say so
    "engine": "mock",
    "md": {"steps": 1500, "equilibration_fs": 400.0, "replicas": 2, "trajectory_every_steps": 10,
           "trajectory_format": "dcd"},
}  # fmt: skip


class Tables(HTMLParser):
    """Rows of every <table> (cell texts) and the text of <script type="application/json"> elements."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[str]] = []
        self.scripts: dict[str, str] = {}
        self._cell: list[str] | None = None
        self._script: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "script" and attrs.get("type") == "application/json":
            self._script = attrs.get("id", "")
            self.scripts[self._script] = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self.rows[-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "script":
            self._script = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        if self._script is not None:
            self.scripts[self._script] += data


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp("report-campaign")
    write_config(work, CONFIG)
    check_ok(snakemake(work, "--cores", "2"), "mock campaign")
    out = work / "report.html"
    check_ok(snakemake(work, "--report", str(out)), "snakemake --report")
    return work, out.read_text(encoding="utf-8")


def embedded(report_html: str, filename: str) -> str:
    m = re.search(r"data:text/html;charset=[\w-]+;filename=" + re.escape(filename) + r";base64,([A-Za-z0-9+/=]+)",
                  report_html)  # fmt: skip
    assert m, f"{filename} is not embedded in the report"
    return base64.b64decode(m.group(1)).decode("utf-8")


def test_the_report_holds_the_summary_table_with_units_level_and_warnings(report):
    work, text = report
    page = Tables()
    page.feed(embedded(text, "summary.html"))
    header, *rows = page.rows
    assert header[:2] == ["system", "edge (nm)"]
    assert "λ (meV)" in header and "Γ classical (Eq. 2) (meV)" in header and "T of Γ (K)" in header
    summary = pd.read_csv(work / "results/summary.csv")
    assert [r[0] for r in rows] == list(summary["system"])
    by_system = {r[0]: dict(zip(header, r)) for r in rows}
    for _, s in summary.iterrows():
        cell = by_system[s["system"]]["λ (meV)"]
        value, err = cell.split(" ± ")
        assert float(value) == pytest.approx(s["lambda_meV"], rel=5e-3)
        assert err == "n/a" or float(err) == pytest.approx(s["lambda_meV_err"], rel=5e-2)
        assert by_system[s["system"]]["level"] == "mock"
    assert "single_replica" in by_system["cspbbr3_3x3x3"]["warnings"]
    data = json.loads(page.scripts["qdphonon-summary"])
    assert [r["system"] for r in data["rows"]] == list(summary["system"])
    assert [r["warnings"] for r in data["rows"]] == [w if isinstance(w, str) else "" for w in summary["warnings"]]
    assert all(c == pytest.approx(0.6827, abs=1e-3) for c in data["confidence_level"])
    html = embedded(text, "summary.html")
    assert "68.27 % Student-t interval" in html and "SYNTHETIC" in html


def test_the_start_page_has_the_headline_numbers_and_one_meaning_of_level(report):
    work, text = report
    summary = pd.read_csv(work / "results/summary.csv")
    assert "Headline numbers" in text
    assert "level of theory: pbe" not in text.lower() and "level: mock" in text
    for _, s in summary.iterrows():
        assert s["system"] in text
        assert f"{s['lambda_meV']:.3g}" in text
    assert "single_replica" in text


def test_summary_records_how_gamma_was_obtained(report):
    work, _ = report
    summary = pd.read_csv(work / "results/summary.csv")
    assert set(summary["route"]) == {"md"}
    assert set(summary["md_temperature_K"]) == {10.0} and set(summary["timestep_fs"]) == {2.0}
    assert set(summary["gamma_scaling"]) == {"harmonic_from_T_md"}
    assert summary.set_index("system").loc["cspbbr3_3x3x3", "n_replicas"] == 1
