"""A region edge that cuts a spectral line (docs/physics.md §4.8).

Known answer: the Hann window's amplitude response ``W(f) = sinc(f) / (1 - f^2)`` (f in bins) puts
the fraction ``sum_{k below the edge} |W(k - f0)|^2 / sum_lobe |W(k - f0)|^2`` of a line at
``f0`` bins into the bins below an edge. The case is the real PBE Cs4PbBr6 run's: 4.1 meV bins,
one line 0.86 meV above the 12 meV edge, about a tenth of lambda on the wrong side.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from qdphonon.analysis.edges import flag_regions, lines_across_edges
from qdphonon.analysis.spectrum import ResolutionWarning
from qdphonon.analysis.system import analyze_system
from qdphonon.units import BOLTZMANN_meV_per_K, HBAR_meV_fs

DT_FS = 5.0


def hann_power(f):
    f = np.asarray(f, dtype=float)
    return (np.sinc(f) / (1 - f**2)) ** 2


def one_line(tmp_path, n, e_line, lam=200.0, phase=0.7):
    t = np.arange(n) * DT_FS
    amp = math.sqrt(4 * lam * BOLTZMANN_meV_per_K * 10.0)  # Var = A^2/2 = 2 lambda k_B T
    path = tmp_path / f"line_{e_line:g}.csv"
    pd.DataFrame({"time_fs": t, "vbm_eV": -4.0 + 0 * t,
                  "cbm_eV": -1.5 + amp * np.cos(e_line / HBAR_meV_fs * t + phase) / 1000}).to_csv(path, index=False)
    return path, 2 * math.pi * HBAR_meV_fs / (n * DT_FS)


def test_a_line_next_to_an_edge_says_how_much_lambda_crosses_it(tmp_path):
    path, bin_meV = one_line(tmp_path, 201, 12.86)
    f0 = 12.86 / bin_meV
    lobe = np.arange(1, 6)  # the peak bin 3 +- 2
    expected_fraction = hann_power(lobe[lobe * bin_meV < 12.0] - f0).sum() / hann_power(lobe - f0).sum()
    assert 0.08 < expected_fraction < 0.14
    with pytest.warns(ResolutionWarning, match="straddles the region edge 12 meV"):
        res = analyze_system([path], 10.0, 300.0, temperatures_K=[300.0])
    (cross,) = [c for c in res["edge_lines"] if c["edge_meV"] == 12.0]
    assert cross["lambda_across_meV"] == pytest.approx(expected_fraction * cross["lambda_line_meV"], rel=0.15)
    low, inter, lo = res["regions"]
    assert lo["resolved"] is False and lo["lambda_across_edges_meV"] > 0.1 * lo["lambda_meV"]
    assert lo["S_err"] is None  # an unresolved region gets no interval


def test_a_line_inside_its_region_crosses_nothing(tmp_path):
    path, _ = one_line(tmp_path, 201, 20.6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = analyze_system([path], 10.0, 300.0, temperatures_K=[300.0])
    assert [c for c in res["edge_lines"] if c["edge_meV"] == 12.0] == []
    lo = res["regions"][2]
    assert lo["resolved"] is True and lo["lambda_across_edges_meV"] < 0.02 * lo["lambda_meV"]
    assert lo["lambda_meV_interval"][0] < lo["lambda_meV"] < lo["lambda_meV_interval"][1]


def test_spill_is_counted_in_both_regions_and_flags_by_fraction():
    e = np.arange(1, 40) * 1.0
    S_hw = np.zeros_like(e)
    S_hw[[10, 11, 12, 13, 14]] = [1.0, 4.0, 6.0, 4.0, 1.0]  # a line at 13 meV, lobe 11-15 meV
    S_hw[[5, 6, 7]] = [0.5, 2.0, 0.5]  # a line at 7 meV, well inside [4.5, 12)
    crossings, spill = lines_across_edges(e, S_hw / e, (0.0, 4.5, 12.5, 30.0), main_lobe_bins=4)
    (c,) = crossings
    assert c["edge_meV"] == 12.5 and c["line_meV"] == 13.0 and c["lambda_across_meV"] == pytest.approx(5.0)
    assert spill == pytest.approx([0.0, 5.0, 5.0])  # the LO line puts 5 meV into intermediate: counted on both sides
    regions = [{"name": n, "lo_meV": a, "hi_meV": b, "lambda_meV": lam, "resolved": True}
               for n, a, b, lam in (("low", 0, 4.5, 0.0), ("intermediate", 4.5, 12.5, 14.0), ("LO", 12.5, 30, 5.0))]
    assert flag_regions(regions, spill) == ["intermediate", "LO"]
    assert regions[0]["resolved"] is True and regions[0]["lambda_across_edges_meV"] == 0.0
