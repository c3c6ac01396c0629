"""Property-based tests (hypothesis) where random inputs pay: band-edge tables with random defects, and
Parseval on random gap series. Derandomized (the same examples on every run) and without deadlines, so
the outcome depends neither on luck nor on the machine's speed."""

from __future__ import annotations

import math
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from qdphonon.analysis.inputs import read_band_edges
from qdphonon.analysis.spectrum import analyze_gap, huang_rhys_spectrum, reorganization_energy
from qdphonon import units

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip

K_B_meV_per_K = 8.617333262e-2
"""Boltzmann's constant, CODATA 2018 (exact by the SI definition), meV/K; written here, not taken from qdphonon."""
HBAR_meV_fs = 658.2119569
"""hbar, CODATA 2018, meV fs."""


def test_constants_are_codata():
    assert units.BOLTZMANN_meV_per_K == pytest.approx(K_B_meV_per_K, rel=1e-9)
    assert units.HBAR_meV_fs == pytest.approx(HBAR_meV_fs, rel=1e-9)


# --- band-edge tables -------------------------------------------------------------------------------

REQUIRED = ("time_fs", "vbm_eV", "cbm_eV")
OPTIONAL = ("step", "gap_eV", "scf_converged", "synthetic", "note")
BAD_CELLS = ("", "nan", "NaN", "inf", "-inf", "1e400", "abc", "1,5", "1.0.0", "0x10", '"', "--1", "1e", "é", "TRUE")
"""Cell texts that are not finite numbers (or break the CSV quoting)."""


@st.composite
def band_edge_tables(draw):
    """(CSV text, whether it is a clean table, expected columns of a clean one): a well-formed table of
    ``n`` rows on a uniform time grid, then up to four random defects."""
    n = draw(st.integers(0, 8))
    dt = draw(st.sampled_from([0.5, 1.0, 2.0, 5.0]))
    t0 = draw(st.sampled_from([0.0, 2.0, 1000.0]))
    optional = draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=3))
    columns = draw(st.permutations(list(REQUIRED) + optional))
    vbm = draw(st.lists(st.floats(-8.0, -3.0, allow_nan=False), min_size=n, max_size=n))
    gap = draw(st.lists(st.floats(0.01, 4.0, allow_nan=False), min_size=n, max_size=n))
    values = {
        "step": [str(i) for i in range(n)],
        "time_fs": [repr(t0 + i * dt) for i in range(n)],
        "vbm_eV": [repr(v) for v in vbm],
        "cbm_eV": [repr(v + g) for v, g in zip(vbm, gap)],
        "gap_eV": [repr(g) for g in gap],
        "scf_converged": [draw(st.sampled_from(["True", "False", "1", "0"])) for _ in range(n)],
        "synthetic": ["False"] * n,
        "note": [draw(st.sampled_from(["ok", "x y", "a;b"])) for _ in range(n)],
    }
    header = list(columns)
    rows = [[values[c][i] for c in columns] for i in range(n)]
    lines: list[str] = []
    defects = draw(st.lists(st.sampled_from([
        "bad_cell", "drop_column", "rename_column", "duplicate_column", "short_row", "long_row", "swap_times",
        "repeat_row", "delete_row", "jitter_time", "comment_line", "blank_line", "junk_line", "semicolons",
        "spaces", "header_only", "no_header", "crlf", "bom",
    ]), max_size=4))  # fmt: skip
    for d in defects:
        if d == "bad_cell" and rows:
            i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(header) - 1))
            rows[i][j] = draw(st.sampled_from(BAD_CELLS))
        elif d == "drop_column" and header:
            j = draw(st.integers(0, len(header) - 1))
            del header[j]
            rows = [r[:j] + r[j + 1 :] for r in rows]
        elif d == "rename_column" and header:
            j = draw(st.integers(0, len(header) - 1))
            header[j] = draw(st.sampled_from([header[j].upper(), header[j] + "_x", "", "time fs"]))
        elif d == "duplicate_column" and header:
            j = draw(st.integers(0, len(header) - 1))
            header.append(header[j])
            rows = [r + [r[j]] for r in rows]
        elif d == "short_row" and rows:
            i = draw(st.integers(0, len(rows) - 1))
            rows[i] = rows[i][:-1]
        elif d == "long_row" and rows:
            i = draw(st.integers(0, len(rows) - 1))
            rows[i] = rows[i] + ["7"]
        elif d == "swap_times" and len(rows) >= 2 and "time_fs" in header:
            j, i = header.index("time_fs"), draw(st.integers(0, len(rows) - 2))
            rows[i][j], rows[i + 1][j] = rows[i + 1][j], rows[i][j]
        elif d == "repeat_row" and rows:
            i = draw(st.integers(0, len(rows) - 1))
            rows.insert(i, list(rows[i]))
        elif d == "delete_row" and rows:
            del rows[draw(st.integers(0, len(rows) - 1))]
        elif d == "jitter_time" and rows and "time_fs" in header:
            i, j = draw(st.integers(0, len(rows) - 1)), header.index("time_fs")
            try:
                rows[i][j] = repr(float(rows[i][j]) + draw(st.sampled_from([0.3, -0.3, 1e-9, 7.0])) * dt)
            except (ValueError, IndexError):
                pass
        elif d == "comment_line":
            lines.append(draw(st.sampled_from(["# a comment", "#", "# synthetic (mock engine)"])))
        elif d == "blank_line":
            lines.append("")
        elif d == "junk_line":
            lines.append(draw(st.sampled_from(["hello", "1,2", ",,,", "\x00\x01", "time_fs,vbm_eV,cbm_eV"])))
    text_rows = [",".join(header)] + [",".join(r) for r in rows]
    for extra in lines:  # anywhere after the header, or before it
        text_rows.insert(draw(st.integers(0, len(text_rows))), extra)
    if "semicolons" in defects and len(text_rows) > 1:
        i = draw(st.integers(0, len(text_rows) - 1))
        text_rows[i] = text_rows[i].replace(",", ";")
    if "spaces" in defects:
        text_rows = [", ".join(line.split(",")) for line in text_rows]
    if "header_only" in defects:
        text_rows = text_rows[:1]
    if "no_header" in defects and text_rows:
        text_rows = text_rows[1:]
    sep = "\r\n" if "crlf" in defects else "\n"
    text = sep.join(text_rows) + sep
    if "bom" in defects:
        text = "\ufeff" + text
    clean = not defects and n >= 2
    expected = {c: np.array([float(x) for x in values[c]]) for c in REQUIRED} if clean else None
    return text, clean, expected


def read_or_refuse(path: Path):
    """read_band_edges's result, or the ValueError it refused with; anything else propagates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return read_band_edges(path), None
        except ValueError as exc:
            return None, exc


def assert_valid_trajectory(traj) -> None:
    t = traj.time_fs
    assert traj.n_samples >= 2 and t.shape == traj.vbm_eV.shape == traj.cbm_eV.shape
    assert np.all(np.isfinite(t)) and np.all(np.isfinite(traj.vbm_eV)) and np.all(np.isfinite(traj.cbm_eV))
    steps = np.diff(t)
    assert np.all(steps > 0)
    np.testing.assert_allclose(steps, steps.mean(), rtol=1.01e-3)


@PROPERTY
@given(band_edge_tables())
@example(("time_fs,vbm_eV,cbm_eV\n0,-5,-3\n2,-5.1,-3\n", True,
          {"time_fs": np.array([0.0, 2.0]), "vbm_eV": np.array([-5.0, -5.1]), "cbm_eV": np.array([-3.0, -3.0])}))
@example(("time_fs,vbm_eV,cbm_eV\n0,-5,-3\n2,-5,-3\n3,-5,-3\n", False, None))  # non-uniform
@example(("step,time_fs,vbm_eV,cbm_eV\n0,0,-5,-3\n2,4,-5,-3\n", False, None))  # half the steps missing
def test_band_edge_table_is_read_exactly_or_refused_naming_the_file(table):
    """Any table (UTF-8 text) is either accepted -- then on a uniform, strictly increasing time grid with
    finite values, and a clean table exactly as written -- or refused with a ValueError naming the file."""
    text, clean, expected = table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "replica r0.csv"
        path.write_text(text, encoding="utf-8", newline="")
        traj, refusal = read_or_refuse(path)
    if refusal is not None:
        assert not clean, f"a clean table was refused: {refusal}"
        assert str(path) in str(refusal), f"the message does not name the file: {refusal}"
        return
    assert_valid_trajectory(traj)
    if clean:
        np.testing.assert_array_equal(traj.time_fs, expected["time_fs"])
        np.testing.assert_array_equal(traj.vbm_eV, expected["vbm_eV"])
        np.testing.assert_array_equal(traj.cbm_eV, expected["cbm_eV"])
        assert traj.n_interpolated == 0


GOOD_TABLE = "time_fs,vbm_eV,cbm_eV\n0,-5,-3\n2,-5.1,-3\n4,-5.2,-3.1\n"


def refusal_message(path: Path) -> str:
    try:
        read_band_edges(path)
    except ValueError as exc:
        return str(exc)
    pytest.fail(f"{path} was accepted")


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="analysis.inputs.read_band_edges: bytes that are not UTF-8 raise pandas' bare "
                          "UnicodeDecodeError ('utf-8' codec can't decode byte ...), which names no file")  # fmt: skip
@pytest.mark.parametrize("junk", [b"\xff", b"\xe9t\xe9", b"\x80\x81"])
def test_band_edge_table_with_bytes_that_are_not_utf8_is_refused_naming_the_file(tmp_path, junk):
    path = tmp_path / "r0.csv"
    path.write_bytes(GOOD_TABLE.encode().replace(b"-5.1", junk))
    assert str(path) in refusal_message(path)


@pytest.mark.xfail(strict=True, raises=AttributeError,
                   reason="metadata.read_table_metadata returns a JSON sidecar that is not an object (a list, a "
                          "string, a number) as is; read_band_edges then fails with AttributeError on .get")  # fmt: skip
@pytest.mark.parametrize("sidecar", ["[1, 2]", '"level xtb"', "3"])
def test_band_edge_sidecar_that_is_not_an_object_is_refused_naming_the_file(tmp_path, sidecar):
    path = tmp_path / "r0.csv"
    path.write_text(GOOD_TABLE)
    path.with_suffix(".json").write_text(sidecar)
    with pytest.raises(ValueError, match=re.escape(str(path.with_suffix("")))):
        read_band_edges(path)


@pytest.mark.parametrize("sidecar", ["{", '{"synthetic": tru}', ""])
def test_band_edge_sidecar_that_is_not_json_is_refused_naming_it(tmp_path, sidecar):
    path = tmp_path / "r0.csv"
    path.write_text(GOOD_TABLE)
    path.with_suffix(".json").write_text(sidecar)
    with pytest.raises(ValueError, match=re.escape(str(path.with_suffix(".json")))):
        read_band_edges(path)


# --- Parseval -------------------------------------------------------------------------------------

def gap_series():
    """A gap trajectory (eV): a mean near 2.5 eV plus fluctuations of up to 100 meV, 2 to 600 samples."""
    return hnp.arrays(np.float64, st.integers(2, 600), elements=st.floats(-0.1, 0.1, allow_nan=False, width=64))


@PROPERTY
@given(gap_series(), st.floats(2.4, 2.6), st.floats(0.1, 10.0), st.floats(1.0, 1000.0))
@example(np.array([0.0, 0.001]), 2.5, 2.0, 10.0)
@example(np.array([0.0, 0.0, 0.0]), 2.5, 2.0, 10.0)
def test_parseval_lambda_is_the_variance_over_2_kB_T(fluct_eV, mean_eV, dt_fs, md_temperature_K):
    """sum_k S_k hbar w_k = Var(E_g) / (2 k_B T_md) for any series (docs/physics.md §1): the spectrum of
    paper Eq. 1 carries exactly the variance, computed here directly with numpy and CODATA's k_B."""
    gap_eV = mean_eV + fluct_eV
    gap_meV = gap_eV * 1000.0
    expected = np.var(gap_meV) / (2.0 * K_B_meV_per_K * md_temperature_K)
    tol = 1e-9 * expected + 1e-18
    spec = huang_rhys_spectrum(gap_meV - gap_meV.mean(), dt_fs, md_temperature_K, window="none")
    assert reorganization_energy(spec.energy_meV, spec.S) == pytest.approx(expected, rel=1e-9, abs=tol)
    n = gap_eV.size
    k = np.arange(1, n // 2 + 1)
    np.testing.assert_allclose(spec.energy_meV, 2 * math.pi * HBAR_meV_fs * k / (n * dt_fs), rtol=1e-9)
    assert np.all(spec.S >= 0)
    result = analyze_gap(gap_eV, dt_fs, md_temperature_K, 300.0, window="none")
    assert result.lambda_meV == pytest.approx(expected, rel=1e-9, abs=tol)
    assert reorganization_energy(result.spectrum.energy_meV, result.spectrum.S) == pytest.approx(expected, rel=1e-9, abs=tol)


@PROPERTY
@given(gap_series().filter(lambda x: x.size >= 8), st.floats(0.1, 10.0), st.floats(1.0, 1000.0))
def test_parseval_holds_for_the_windowed_spectrum(fluct_eV, dt_fs, md_temperature_K):
    """The Hann-windowed spectrum is rescaled to the same total: sum S_window hbar w = Var / (2 k_B T_md),
    for every series whose windowed copy is not zero (see the next test)."""
    gap_meV = (2.5 + fluct_eV) * 1000.0
    x = gap_meV - gap_meV.mean()
    n = x.size
    w = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)
    windowed = (x - np.sum(w * x) / np.sum(w)) * w
    if not np.any(np.abs(windowed) > 1e-9 * (np.abs(x).max() + 1e-300)):
        return  # the degenerate case below
    expected = np.var(gap_meV) / (2.0 * K_B_meV_per_K * md_temperature_K)
    spec = huang_rhys_spectrum(x, dt_fs, md_temperature_K, window="hann")
    assert reorganization_energy(spec.energy_meV, spec.S_window) == pytest.approx(expected, rel=1e-9, abs=1e-18)
    assert reorganization_energy(spec.energy_meV, spec.S) == pytest.approx(expected, rel=1e-9, abs=1e-18)


@pytest.mark.xfail(strict=True, reason="analysis.spectrum.one_sided_power_meV2: when the Hann-windowed series is "
                   "zero (the series is constant wherever the window is non-zero, e.g. only the first sample "
                   "differs) S_window is all zeros, so sum S_window hbar w = 0 < Var/(2 k_B T_md); the module "
                   "docstring says both spectra obey Parseval exactly")  # fmt: skip
@pytest.mark.parametrize("n", [2, 64])
def test_parseval_windowed_spectrum_of_a_series_the_window_hides(n):
    x = np.zeros(n)
    x[0] = 10.0  # meV; the periodic Hann window is 0 at the first sample
    x -= x.mean()
    spec = huang_rhys_spectrum(x, 2.0, 10.0, window="hann")
    expected = np.var(x) / (2.0 * K_B_meV_per_K * 10.0)
    assert reorganization_energy(spec.energy_meV, spec.S_window) == pytest.approx(expected, rel=1e-9)
