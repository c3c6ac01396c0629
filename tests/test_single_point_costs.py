"""The harmonic route's cost per single point (qdphonon.harmonic.cost): the shipped table re-made from the real
validation archives with the package's parsers, and the estimate at other sizes against hand-computed
values."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pandas as pd
import pytest

from qdphonon.harmonic import cost as sp_cost
from qdphonon.cost import default_fit, seconds_per_md_step

REPO = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("single_point_costs", REPO / "validation/single_point_costs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_shipped_table_is_what_the_archives_give():
    shipped = pd.read_csv(sp_cost.DATA_PATH)
    remade = pd.DataFrame(_script().table())
    assert list(shipped.columns) == list(sp_cost.COLUMNS)
    pd.testing.assert_frame_equal(shipped.astype(str), remade[list(shipped.columns)].astype(str))
    n1 = shipped[shipped.source == "validation/pbe_n1_harmonic"].iloc[0]
    assert (n1.level, n1.n_atoms, n1.ranks, n1.n_single_points) == ("pbe", 11, 2, 67)  # its README: 67, median 48 s
    assert n1.s_per_single_point == pytest.approx(47.8, abs=0.1)
    assert n1.min_s <= n1.s_per_single_point <= n1.max_s


ROWS = [{"level": "pbe", "n_atoms": 10, "ranks": 2, "threads": 1, "s_per_single_point": 40.0},
        {"level": "pbe", "n_atoms": 80, "ranks": 2, "threads": 1, "s_per_single_point": 160.0}]  # fmt: skip


def test_a_measured_size_is_returned_and_other_layouts_scale_with_cores():
    assert sp_cost.seconds_per_single_point("pbe", 10, 2, 1, ROWS) == (40.0, "measured")
    assert sp_cost.seconds_per_single_point("pbe", 10, 8, 1, ROWS).s_per_single_point == pytest.approx(10.0)


def test_between_measured_sizes_a_power_law_through_the_neighbours():
    cost = sp_cost.seconds_per_single_point("pbe", 20, 2, 1, ROWS)
    # 40 s at 10 atoms, 160 s at 80: exponent ln 4 / ln 8 = 2/3; at 20 atoms 40 * 2**(2/3)
    assert cost.status == "interpolated" and cost.s_per_single_point == pytest.approx(40 * 2 ** (2 / 3))


def test_beyond_the_measured_sizes_the_nearest_scaled_by_the_md_step_model():
    fit = default_fit("pbe")
    big = sp_cost.seconds_per_single_point("pbe", 480, 2, 1, ROWS)
    assert big.status == "scaled"
    assert big.s_per_single_point == pytest.approx(160.0 * fit.s_per_step(480) / fit.s_per_step(80))
    small = sp_cost.seconds_per_single_point("pbe", 5, 2, 1, ROWS)
    assert small.s_per_single_point == pytest.approx(40.0 * fit.s_per_step(5) / fit.s_per_step(10))
    assert small.s_per_single_point < 40.0 < 160.0 < big.s_per_single_point


def test_a_level_without_measurements_is_priced_in_md_steps():
    cost = sp_cost.seconds_per_single_point("xtb", 64, 2, 1, ROWS)
    md = seconds_per_md_step("xtb", 64, 2, 1).s_per_step
    assert cost.status == "md-steps" and math.isclose(cost.s_per_single_point, sp_cost.SINGLE_POINT_IN_MD_STEPS["xtb"] * md)


def test_a_malformed_table_is_refused_naming_file_and_line(tmp_path):
    bad = tmp_path / "costs.csv"
    bad.write_text(",".join(sp_cost.COLUMNS) + "\npbe,eleven,2,1,47.8,67,17,109,2023.1,x\n")
    with pytest.raises(ValueError, match=r"costs.csv: line 2: .*eleven"):
        sp_cost.read_rows(bad)
    bad.write_text("level,n_atoms\npbe,11\n")
    with pytest.raises(ValueError, match=r"costs.csv: columns \['level', 'n_atoms'\]"):
        sp_cost.read_rows(bad)


@pytest.mark.parametrize("name", ["cp2k_single_point_costs.csv", "cp2k_step_costs.csv", "real_points.csv"])
def test_the_shipped_tables_read_with_plain_pandas_and_versions_stay_text(name):
    """``pandas.read_csv`` with no options: a CP2K version such as 9.10 must not become the float 9.1, so
    the column holds ``CP2K <version>`` (text) wherever a table has one."""
    table = pd.read_csv(sp_cost.DATA_PATH.parent / name)
    assert len(table) >= 1 and not table.columns.str.startswith("Unnamed").any()
    for column in [c for c in table.columns if "version" in c]:
        assert table[column].map(type).eq(str).all() and table[column].str.startswith("CP2K ").all(), column
