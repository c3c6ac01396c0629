"""linewidth.json is one typed record (qdphonon.analysis.records.LinewidthRecord): every field is
described, the shipped real PBE record (validation/pbe_n1/, made before the record existed) loads and
is written back key for key, a misspelt key is refused with the file and the key named, and the
summary's columns are the ones the model declares (docs/architecture.md §2.5)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

from qdphonon.analysis.localisation_run import SUMMARY_COLUMNS as LOCALISATION_COLUMNS
from qdphonon.analysis.records import LinewidthRecord, read_linewidth, summary_columns
from qdphonon.analysis.summary import EXTRA_COLUMNS, write_summary
from qdphonon.typed_records import ABSENT
from archives import extract

REPO = Path(__file__).resolve().parents[1]
ARCHIVE = REPO / "validation" / "pbe_n1" / "pbe_n1.tar.xz"
SYSTEM = "cspbbr3_1x1x1"
UNIT_TOKENS = {"meV": "meV", "eV": "eV", "K": "K", "fs": "fs", "nm": "nm", "A": "A", "meV2": "meV^2"}


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pbe_n1")
    with tarfile.open(ARCHIVE) as tar:
        names = [m for m in tar.getmembers()
                 if m.name.startswith(("analysis/", "structures/")) or m.name == "summary.csv"]
        extract(tar, out, members=names)
    return out


def lw_path(root: Path) -> Path:
    return root / "analysis" / SYSTEM / "linewidth.json"


def copy_with(shipped: Path, tmp_path: Path, edit) -> Path:
    """The shipped system's analysis directory with its linewidth.json changed by ``edit(dict)``."""
    data = json.loads(lw_path(shipped).read_text())
    edit(data)
    path = tmp_path / SYSTEM / "linewidth.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(data, indent=2))
    return path


def test_every_field_has_a_description_and_the_unit_its_name_says():
    info = LinewidthRecord.field_info()
    assert len(info) > 60
    for name, meta in info.items():
        assert isinstance(meta["description"], str) and len(meta["description"]) > 10, name
        tokens = [UNIT_TOKENS[t] for t in name.split("_") if t in UNIT_TOKENS]
        if tokens:
            assert meta["unit"] is not None and tokens[0] in meta["unit"], (name, meta["unit"])


def test_the_shipped_record_loads_and_is_written_back_key_for_key(shipped):
    text = lw_path(shipped).read_text()
    record = read_linewidth(json.loads(text), str(lw_path(shipped)))
    assert record.route == "md" and record.level == "pbe" and record.n_replicas == 2
    assert json.dumps(record.to_json(), indent=2) + "\n" == text  # same keys, order and values


def test_the_summary_of_the_shipped_record_equals_the_one_shipped_with_it(shipped, tmp_path):
    """The shipped summary.csv was made by the hand-written summary this model replaced."""
    before = pd.read_csv(shipped / "summary.csv")
    out = write_summary([lw_path(shipped)], [shipped / "structures" / f"{SYSTEM}.json"], tmp_path / "summary.csv",
                        config_digest=before.loc[0, "config_digest"])  # fmt: skip
    after = pd.read_csv(out)
    added = sorted(set(after.columns) - set(before.columns))
    assert added == sorted(LOCALISATION_COLUMNS)  # added after it was shipped; that run printed no localisation
    assert after[added].isna().all().all()
    assert set(before.columns) <= set(after.columns)
    # shipped before the region_spill kind was read from edge_lines; that run has lines across edges
    assert after.loc[0, "warnings"] == before.loc[0, "warnings"] + ";region_spill"
    same = [c for c in before.columns if c != "warnings"]
    pd.testing.assert_frame_equal(after[same], before[same], check_exact=False, rtol=1e-7)


def test_lines_across_region_edges_reach_the_warning_kinds(shipped):
    """The real PBE run's main line straddles the 4.5 and 12 meV edges (edge_lines, and the warning
    text says so): the summary's warning kinds say region_spill; without edge_lines they do not."""
    from qdphonon.analysis.qualifiers import warning_kinds

    lw = json.loads(lw_path(shipped).read_text())
    assert lw["edge_lines"] and any("straddles the region edge" in w for w in lw["warnings"])
    assert "region_spill" in warning_kinds(lw)
    assert "region_spill" not in warning_kinds({**lw, "edge_lines": []})


def test_each_route_says_how_it_reaches_gamma():
    """The harmonic route weights normal modes by their occupation; it does not scale from T_md."""
    from qdphonon.analysis.qualifiers import gamma_record

    with tarfile.open(REPO / "validation/pbe_n1_harmonic/pbe_n1_harmonic.tar.xz") as tar:
        harmonic = json.load(tar.extractfile("analysis_harmonic/cspbbr3_1x1x1/linewidth.json"))
    with tarfile.open(ARCHIVE) as tar:
        md = json.load(tar.extractfile(f"analysis/{SYSTEM}/linewidth.json"))
    assert gamma_record(harmonic)["gamma_scaling"] == "normal_mode_occupations"
    assert gamma_record(harmonic)["md_temperature_K"] is None and gamma_record(harmonic)["route"] == "harmonic"
    assert gamma_record(md)["gamma_scaling"] == "harmonic_from_T_md" and gamma_record(md)["md_temperature_K"] == 10.0


def test_summary_columns_are_those_the_model_declares(shipped, tmp_path):
    out = write_summary([lw_path(shipped)], [], tmp_path / "summary.csv")
    columns = list(pd.read_csv(out).columns)
    record = read_linewidth(json.loads(lw_path(shipped).read_text()), "shipped")
    declared = []
    for name, names in summary_columns().items():
        if name == "regions":
            declared += [c.format(name=r["name"]) for r in record.regions for c in names]
        else:
            declared += names
    assert columns[:len(declared)] == declared
    assert columns[len(declared):len(declared) + len(EXTRA_COLUMNS)] == list(EXTRA_COLUMNS)
    claims = ["lambda_share_surface", "lambda_share_unexplained", "attribution_explained_variance_cv"]
    claims += list(LOCALISATION_COLUMNS)  # blank: no localisation.csv beside this linewidth.json
    assert columns[len(declared) + len(EXTRA_COLUMNS):] == claims  # attribution.csv beside linewidth.json
    row = pd.read_csv(out).iloc[0]
    for name, meta in LinewidthRecord.field_info().items():
        if meta["summary"] is not None and meta["summary"].kind == "value" and not meta["summary"].structure:
            value = getattr(record, name)
            assert row[name] == pytest.approx(value) if isinstance(value, float) else row[name] == value, name


@pytest.mark.parametrize("edit, key", [
    (lambda d: d.update(lambda_above_band_mev=d.pop("lambda_above_band_meV")), "'lambda_above_band_mev'"),
    (lambda d: d.pop("fwhm_quantum_meV"), "key fwhm_quantum_meV missing"),
    (lambda d: d["lineshape"].update(zpl_wieght=d["lineshape"].pop("zpl_weight")), "lineshape.zpl_weight missing"),
    (lambda d: d["regions"][0].pop("hw_meV"), "regions.hw_meV missing"),
    (lambda d: d.update(n_replicas="2"), "n_replicas: '2' is not of type int"),
    (lambda d: d.update(n_modes=3), "n_modes belongs to route(s) harmonic"),
])  # fmt: skip
def test_a_misspelt_missing_or_mistyped_key_is_refused_with_file_and_key(shipped, tmp_path, edit, key):
    path = copy_with(shipped, tmp_path, edit)
    with pytest.raises(ValueError) as exc:
        write_summary([path], [], tmp_path / "summary.csv")
    assert str(path) in str(exc.value) and key in str(exc.value)
    assert not (tmp_path / "summary.csv").exists()


def test_the_command_refuses_a_misspelt_key_in_one_line(shipped, tmp_path):
    path = copy_with(shipped, tmp_path, lambda d: d.update(gap_std_mev=d.pop("gap_std_meV")))
    res = subprocess.run([sys.executable, "-m", "qdphonon", "summarize", "--linewidths", str(path), "--out",
                          str(tmp_path / "s.csv")], capture_output=True, text=True, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert re.search(rf"{re.escape(str(path))}: unknown linewidth.json key 'gap_std_mev'", res.stderr), res.stderr


def test_an_optional_key_may_be_absent_and_leaves_its_column_blank(shipped, tmp_path):
    kinetic = ("kinetic_temperature_K", "kinetic_temperature_K_per_replica", "kinetic_temperature_deviation",
               "vdos_n_dof", "rigid_motion_removed", "rigid_kinetic_fraction")  # written only with velocities
    path = copy_with(shipped, tmp_path, lambda d: [d.pop(k) for k in kinetic])
    record = read_linewidth(json.loads(path.read_text()), str(path))
    assert record.kinetic_temperature_K is ABSENT and "kinetic_temperature_K" not in record.to_json()
    row = pd.read_csv(write_summary([path], [], tmp_path / "summary.csv")).iloc[0]
    assert pd.isna(row["kinetic_temperature_K"]) and pd.isna(row["rigid_kinetic_fraction"])


def test_the_writer_refuses_a_misspelt_or_missing_field(shipped):
    data = json.loads(lw_path(shipped).read_text())
    with pytest.raises(TypeError, match="lamda_meV"):
        LinewidthRecord(**{**data, "lamda_meV": 1.0})
    data.pop("stationarity")
    with pytest.raises(ValueError, match="stationarity missing"):
        LinewidthRecord(**data)


def test_the_harmonic_route_writes_the_same_record_and_the_summary_reads_it(tmp_path):
    """The spring model of tests/harmonic_model.py through the harmonic route's writer (route-only keys
    such as n_modes are written, MD-only ones such as n_replicas are not) and back through the summary."""
    from harmonic_model import SpringModel
    from qdphonon.harmonic.report import harmonic_result, write_harmonic
    from test_harmonic_math import finite_difference_data

    model = SpringModel()
    facts = {"n_single_points": 31, "n_scf_unconverged": 0, "unconverged": [], "n_electrons": 40, "synthetic": True,
             "structure": "model.xyz", "single_points": "sp"}  # fmt: skip
    result, arrays = harmonic_result(finite_difference_data(model), model.r0, model.m, system="springs", level=None,
                                     synthetic=True, extra=facts)  # fmt: skip
    write_harmonic(tmp_path / "springs", result, arrays)
    record = read_linewidth(json.loads((tmp_path / "springs" / "linewidth.json").read_text()), "springs")
    assert record.route == "harmonic" and record.n_modes == 9 and record.n_replicas is ABSENT
    row = pd.read_csv(write_summary([tmp_path / "springs" / "linewidth.json"], [], tmp_path / "s.csv")).iloc[0]
    assert row["route"] == "harmonic" and row["level"] == "mock"
    assert row["lambda_meV"] == pytest.approx(result["lambda_meV"])
    assert pd.isna(row["n_replicas"]) and pd.isna(row["lambda_lo_meV"]) and pd.isna(row["S_low_err"])
    with pytest.raises(ValueError, match="lambda_meV_interval missing"):  # relabelled: the MD keys are not there
        LinewidthRecord(**{**result, "route": "md"})
