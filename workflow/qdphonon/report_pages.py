"""The Snakemake report's own pages: the summary as an HTML table and the start page with headline numbers.

Both are written from ``summary.csv`` (read with pandas, no options) by ``qdphonon report-pages``;
the report embeds the HTML as a result (category Summary) and shows the reStructuredText as its
start page. The table's rows are also embedded as JSON (``<script type="application/json"
id="qdphonon-summary">``) so that a test, or a reader's script, can get the numbers back
without scraping. "level" means one thing everywhere: the level the numbers were computed at, as
the summary's rows say (``mock`` for the synthetic engine), never the config's unused setting.
"""

from __future__ import annotations

import html
import json
import math
import os
from pathlib import Path
from typing import Any

COLUMNS = [
    ("system", "system", None),
    ("edge_nm", "edge", "nm"),
    ("shell_layers", "shell layers", None),
    ("n_atoms", "atoms", None),
    ("gap_mean_eV", "mean gap", "eV"),
    ("lambda_meV", "λ", "meV"),
    ("fwhm_meV", "Γ classical (Eq. 2)", "meV"),
    ("fwhm_quantum_meV", "Γ quantum", "meV"),
    ("fwhm_lineshape_meV", "Γ cumulant lineshape", "meV"),
    ("report_temperature_K", "T of Γ", "K"),
    ("md_temperature_K", "T_md", "K"),
    ("timestep_fs", "time step", "fs"),
    ("n_replicas", "replicas", None),
    ("error_method", "error from", None),
    ("route", "route", None),
    ("gamma_scaling", "Γ scaled by", None),
    ("level", "level", None),
    ("warnings", "warnings", None),
]
"""(summary column, header, unit) of the report's table; a column with ``_err`` gets ``± err``."""


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value == ""


_NO_ERROR = object()


def _fmt(value: Any, err: Any = _NO_ERROR) -> str:
    """``value`` to 3 significant digits; with ``err`` given, ``value ± err`` (``± n/a``: no estimate)."""
    if _missing(value):
        return "–"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        text = f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        if err is not _NO_ERROR:
            text += " ± " + ("n/a" if _missing(err) else f"{err:.2g}")
        return text
    return str(value)


def summary_records(summary_csv: str | os.PathLike) -> list[dict[str, Any]]:
    """The summary's rows as plain dicts (NaN as None)."""
    import pandas as pd

    df = pd.read_csv(summary_csv, keep_default_na=True)
    rows = json.loads(df.to_json(orient="records"))
    for r in rows:
        r["warnings"] = r.get("warnings") or ""
    return rows


def _warning_texts(summary_csv: str | os.PathLike) -> dict[str, list[str]]:
    """System -> the full warning messages of its linewidth.json, from the summary's JSON sidecar."""
    from qdphonon.metadata import sidecar_path

    try:
        meta = json.loads(sidecar_path(summary_csv).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    found = meta.get("warnings") if isinstance(meta, dict) else None
    return {str(k): [str(m) for m in v] for k, v in found.items() if isinstance(v, list)} if isinstance(found, dict) else {}


def _confidence(rows: list[dict]) -> str:
    levels = sorted({r.get("confidence_level") for r in rows if not _missing(r.get("confidence_level"))})
    return ", ".join(f"{100 * c:.2f} %" for c in levels) or "n/a"


def _synthetic(rows: list[dict]) -> bool:
    return any(str(r.get("synthetic")).lower() == "true" for r in rows)


def summary_html(summary_csv: str | os.PathLike) -> str:
    """A self-contained HTML page: the summary table (units in the headers, errors as ± the
    half-width of the interval at the stated level), the warning legend and the rows as JSON."""
    rows = summary_records(summary_csv)
    present = [(c, h, u) for c, h, u in COLUMNS if any(c in r for r in rows)]
    head = "".join(f"<th>{html.escape(h)}{f' ({u})' if u else ''}</th>" for _, h, u in present)
    body = []
    for r in rows:
        cells = []
        for c, _, _ in present:
            text = _fmt(r.get(c), r.get(f"{c}_err")) if f"{c}_err" in r else _fmt(r.get(c))
            text = "none" if c == "warnings" and not r.get(c) else text
            cls = ' class="warn"' if c == "warnings" and r.get(c) else ""
            cells.append(f"<td{cls}>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    from qdphonon.analysis.qualifiers import WARNING_KINDS

    used = sorted({k for r in rows for k in str(r.get("warnings") or "").split(";") if k},
                  key=list(WARNING_KINDS).index)  # fmt: skip
    legend = "".join(f"<li><b>{k}</b>: {html.escape(WARNING_KINDS[k])}</li>" for k in used) or "<li>none</li>"
    texts = "".join(f"<li><b>{html.escape(system)}</b>: {html.escape(m)}</li>"
                    for system, messages in _warning_texts(summary_csv).items() for m in messages)  # fmt: skip
    banner = ('<p class="synthetic">SYNTHETIC (mock engine): these numbers exercise the workflow; they are not '
              "physics.</p>") if _synthetic(rows) else ""  # fmt: skip
    data = json.dumps({"confidence_level": [r.get("confidence_level") for r in rows], "rows": rows})
    data = data.replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>qdphonon summary</title>
<style>body{{font-family:sans-serif}} table{{border-collapse:collapse}} td,th{{border:1px solid #999;
padding:2px 6px;text-align:right}} td:first-child,th:first-child{{text-align:left}} .warn{{color:#a00}}
.synthetic{{color:#fff;background:#c00;padding:4px;font-weight:bold}}</style></head><body>
{banner}<h2>Campaign summary ({len(rows)} system{'s' if len(rows) != 1 else ''})</h2>
<p>Errors are the half-width of the {_confidence(rows)} Student-t interval (over replicas, or
blocks of one trajectory: column "error from"); "n/a" when no estimate is possible. Γ is the FWHM
at "T of Γ": classical Eq. 2 (Γ = 2√(2 ln2 · 2λ k_B T)), quantum (coth per mode), or from the
cumulant lineshape. All columns and the full warning texts: summary.csv and its summary.json.</p>
<table id="summary"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<h3>Warnings</h3><ul>{legend}</ul>
<h3>Warning texts (linewidth.json)</h3><ul>{texts or "<li>none</li>"}</ul>
<script type="application/json" id="qdphonon-summary">{data}</script>
</body></html>
"""


def start_page_rst(summary_csv: str | os.PathLike, engine: str) -> str:
    """The report's start page: what the campaign is, what "level" its numbers have, and the
    headline numbers (λ, Γ(T) classical and quantum with errors, warnings) per system."""
    rows = summary_records(summary_csv)
    levels = sorted({str(r.get("level")) for r in rows if not _missing(r.get("level"))})
    if _synthetic(rows):
        what = ("With the **mock** engine every number is **synthetic** (level: mock): it exercises the workflow, "
                "it is not physics.")  # fmt: skip
    else:
        what = (f"Level of the numbers: {', '.join(levels) or 'unknown'}. GFN1-xTB (xtb) badly underestimates "
                "these gaps; the physics of the reference study needs the PBE level.")  # fmt: skip
    temps = sorted({r.get("report_temperature_K") for r in rows if not _missing(r.get("report_temperature_K"))})
    T = ", ".join(f"{t:g}" for t in temps) or "?"
    lines = [
        "qdphonon campaign: exciton-phonon coupling and emission linewidth of perovskite quantum dots",
        f"from AIMD band-edge trajectories (engine: {engine}). {what}",
        "",
        f"Headline numbers (Γ: FWHM at {T} K; ± the half-width of the {_confidence(rows)} interval; "
        "the full table is under Summary):",
        "",
        ".. list-table::",
        "   :header-rows: 1",
        "",
        "   * - system",
        "     - edge (nm)",
        "     - λ (meV)",
        "     - Γ classical Eq. 2 (meV)",
        "     - Γ quantum (meV)",
        "     - level",
        "     - warnings",
    ]
    for r in rows:
        cells = [r.get("system"), _fmt(r.get("edge_nm")), _fmt(r.get("lambda_meV"), r.get("lambda_meV_err")),
                 _fmt(r.get("fwhm_meV"), r.get("fwhm_meV_err")),
                 _fmt(r.get("fwhm_quantum_meV"), r.get("fwhm_quantum_meV_err")), r.get("level"),
                 (r.get("warnings") or "none").replace(";", ", ")]  # fmt: skip
        lines.append(f"   * - {cells[0]}")
        lines += [f"     - {c}" for c in cells[1:]]
    from qdphonon.analysis.qualifiers import WARNING_KINDS

    used = [k for k in WARNING_KINDS if any(k in str(r.get("warnings") or "").split(";") for r in rows)]
    if used:
        lines += ["", "Warnings:", ""] + [f"- **{k}**: {WARNING_KINDS[k]}" for k in used]
    text = "\n".join(str(x) for x in lines) + "\n"
    return text.replace("{", "(").replace("}", ")")  # rendered through Jinja by Snakemake


def write_report_pages(summary_csv: str | os.PathLike, html_out: str | os.PathLike, rst_out: str | os.PathLike,
                       engine: str) -> None:  # fmt: skip
    """Write :func:`summary_html` and :func:`start_page_rst` of ``summary_csv``."""
    for path, text in ((html_out, summary_html(summary_csv)), (rst_out, start_page_rst(summary_csv, engine))):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
