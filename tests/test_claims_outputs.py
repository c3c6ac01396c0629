"""The attribution's command, summary columns and figure, on a mock run through the real parsers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from qdphonon.analysis.summary import write_summary
from qdphonon.analysis.system import analyze_system
from qdphonon.cli import main
from qdphonon.figures.claims import attribution_figure
from qdphonon.figures.common import SYNTHETIC_LABEL, figure_texts

from test_attribution_mock import mock_run


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("claims")
    mock_run(tmp, (1, 1, 2), steps=400, every=2)
    out = tmp / "analysis" / "dot"
    assert main(["attribute", "--band-edges", str(tmp / "edges.csv"), "--trajectories", str(tmp / "traj.npz"),
                 "--outdir", str(out), "--discard-fs", "0"]) == 0  # fmt: skip
    with pytest.warns(UserWarning):  # one short mock replica: resolution and normalisation warnings
        analyze_system([tmp / "edges.csv"], 10.0, outdir=out, system="dot")
    return tmp, out


def test_attribute_command_writes_plain_tables_with_sidecars(analysed):
    _, out = analysed
    table = pd.read_csv(out / "attribution.csv")
    assert table["region"].tolist()[-1] == "unexplained" and table["share"].sum() == pytest.approx(1.0)
    side = json.loads((out / "attribution.json").read_text())
    assert side["synthetic"] and 0.0 <= side["explained_variance_cv"] <= 1.0 and side["md_temperature_K"] == 10.0
    assert pd.read_csv(out / "attribution_spectrum.csv").columns[0] == "energy_meV"


def test_summary_and_figure_carry_the_shares(analysed, tmp_path):
    tmp, out = analysed
    summary = write_summary([out / "linewidth.json"], [], tmp_path / "summary.csv")
    row = pd.read_csv(summary).iloc[0]
    share = pd.read_csv(out / "attribution.csv").set_index("region")["share"]
    assert row["lambda_share_surface"] == pytest.approx(share["surface"])
    assert 0.0 <= row["attribution_explained_variance_cv"] <= 1.0
    df = pd.read_csv(summary)
    df["edge_nm"] = 1.2
    fig = attribution_figure(df)
    assert SYNTHETIC_LABEL in " ".join(figure_texts(fig))


def test_attribute_command_names_a_missing_trajectory(analysed, capsys):
    tmp, out = analysed
    assert main(["attribute", "--band-edges", str(tmp / "edges.csv"), "--trajectories", str(tmp / "nope.npz"),
                 "--outdir", str(out / "x"), "--discard-fs", "0"]) == 1  # fmt: skip
    assert "nope.npz" in capsys.readouterr().err
