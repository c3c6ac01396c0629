"""The MD and harmonic routes side by side (analysis/route_comparison.py): the rows, the interval
test, refusals of records that are not one system by both routes, and the grid-independent
cumulative lambda."""

from __future__ import annotations

import numpy as np
import pytest

from qdphonon.analysis.route_comparison import compare_routes, cumulative_lambda


def records(**md_extra):
    md = {"route": "md", "system": "s", "report_temperature_K": 300.0, "lambda_meV": 100.0,
          "lambda_meV_interval": [80.0, 120.0], "fwhm_meV": 50.0, "fwhm_meV_interval": None, **md_extra}  # fmt: skip
    harmonic = {"route": "harmonic", "system": "s", "report_temperature_K": 300.0, "lambda_meV": 130.0, "fwhm_meV": 49.0}
    return md, harmonic


def test_rows_ratio_and_interval():
    rows = {r.quantity: r for r in compare_routes(*records())}
    assert set(rows) == {"lambda_meV", "fwhm_meV"}  # quantities missing from either record are left out
    assert rows["lambda_meV"].harmonic_over_md == pytest.approx(1.3)
    assert rows["lambda_meV"].harmonic_within_md_interval is False
    assert rows["fwhm_meV"].harmonic_within_md_interval is None  # no MD interval: no verdict


@pytest.mark.parametrize("change,match", [({"route": "harmonic"}, "routes"), ({"system": "t"}, "two systems"),
                                          ({"report_temperature_K": 77.0}, "report temperatures")])
def test_records_of_different_things_are_refused(change, match):
    md, harmonic = records(**change)
    with pytest.raises(ValueError, match=match):
        compare_routes(md, harmonic)


def test_cumulative_lambda_is_the_same_for_modes_and_for_their_bins():
    """Two modes, and the same modes as bins on a grid that holds them exactly: the cumulative lambda
    ends at sum S hbar w either way and agrees wherever both are defined."""
    e_modes, S_modes = np.array([12.0, 4.0]), np.array([0.5, 2.0])
    e, c = cumulative_lambda(e_modes, S_modes)
    assert e.tolist() == [4.0, 12.0] and c.tolist() == [8.0, 14.0]
    grid = np.arange(1, 16) * 1.0
    S_bins = np.where(grid == 4.0, 2.0, 0.0) + np.where(grid == 12.0, 0.5, 0.0)
    eb, cb = cumulative_lambda(grid, S_bins)
    assert cb[-1] == pytest.approx(c[-1]) and cb[eb == 4.0][0] == pytest.approx(8.0)
