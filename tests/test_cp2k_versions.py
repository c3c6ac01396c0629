"""The parser on CP2K main outputs of other people and other versions (2.6.2 to 2024.3, real, from public
repositories) and on fixtures derived from CP2K's own print statements (2026.2, pre-8.2 MOLog).
Sources, commits and licences: tests/data/cp2k-versions/README.md. Expected values are read off the files
independently: by hand (line numbers given) or by the regular expressions of this file, not by qdphonon."""

from __future__ import annotations

import lzma
import re
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon import settings
from qdphonon.parsers.main_output import read_main_output
from qdphonon.parsers.molog import UnsupportedMOLogFormat
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.parsers.writers import write_band_edges_csv
from test_parsers import ref_molog_blocks
from archives import extract

DATA = Path(__file__).parent / "data" / "cp2k-versions"

# name: (version, run type, level, time step fs, T_md K) read by hand; the line of each in the comment
MD_RUNS = {
    "v2.6.2_md_nve.out": ("2.6.2", "pade", 0.5, 300.0),  # 20, 162 PADE, 437 'MD| Time Step', 438
    "v7.1_md_nvt.out": ("7.1", "pbe", 0.1, 330.0),  # 21, 167 (ROUTINE=NEW before it), 724, 725
    "v9.1_md_pbe_npt_i.out": ("9.1", "pbe", 1.0, 550.0),  # 31, 191 (ROUTINE=NEW before it), 899, 900
    "v9.1_md_xtb_npt_i.out": ("9.1", "xtb", 1.0, 300.0),  # 27, 214 'xTB|', 579, 580
    "v2022.1_md_blyp_nvt.out": ("2022.1", "blyp", 0.5, 298.15),  # 29, 181 BECKE88 + 183 LYP, 2110, 2111
    "v2022.2_md_npt_i.out": ("2022.2", "pbe", 2.0, 300.0),  # 27, 196, 822, 823
    "v2023.1_md_nvt.out": ("2023.1", "pbe", 1.0, 800.0),  # 27, 191, 1186, 1187
    "v2023.2_md_nvt_restart.out": ("2023.2", "pbe", 1.0, 300.0),  # 52, 209, 638, 639
    "v2024.1_md_npt_i_restart.out": ("2024.1", "pbe", 1.0, 500.0),  # 55, 210, 2192, 2193
    "v2026.2-derived_md_xtb.out": ("2026.2", "xtb", 2.0, 10.0),  # 28, 177, 490, 491
}
# name: (run type, its line) read by hand
OTHER_RUNS = {"v2024.3_geo_opt.out": ("GEO_OPT", 55), "v9.1_geo_opt.out": ("GEO_OPT", 45),
              "v9.1_energy_ot_gpu.out": ("ENERGY", 57), "v2.6.2_geo_opt.out": ("GEO_OPT", 38)}  # fmt: skip


def unpack(name: str, dest: Path, as_name: str | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / (as_name or name)
    out.write_bytes(lzma.decompress((DATA / f"{name}.xz").read_bytes()))
    return out


def ref_steps(text: str) -> list[int]:
    """MD step numbers of a main output, either header format, by this test's own expression."""
    return [int(n) for n in re.findall(r"^ (?:STEP NUMBER {18}=|MD\| Step number) +(\d+) *$", text, re.M)]


def ref_project(text: str) -> str:
    return re.search(r"GLOBAL\| Project name +(\S+)", text).group(1)


def test_fixtures_are_small_and_listed_in_readme():
    readme = (DATA / "README.md").read_text()
    files = sorted(p.name for p in DATA.glob("*.xz"))
    assert len(files) >= 14
    for name in files:
        assert (DATA / name).stat().st_size < 200_000, name
        assert f"`{name}`" in readme, f"{name} not described in README.md"


@pytest.mark.parametrize("name", sorted(MD_RUNS))
def test_md_steps_time_step_temperature_and_level_of_every_version(name, tmp_path):
    version, level, dt_fs, t_md_K = MD_RUNS[name]
    path = unpack(name, tmp_path)
    steps = ref_steps(path.read_text())
    assert steps, "the test's own reading found no step"
    mo = read_main_output(path)
    assert (mo.cp2k_version, mo.run_type, mo.level) == (version, "MD", level)
    assert mo.timestep_fs == dt_fs and mo.md_temperature_K == t_md_K
    dated = [ev for ev in mo.evaluations if ev.kind != "trailing"]
    assert [ev.kind for ev in dated] == ["init"] + ["step"] * len(steps)
    assert [ev.step for ev in dated] == [steps[0] - 1] + steps
    times = [ev.time_fs for ev in dated[1:]]
    np.testing.assert_allclose(times, [dt_fs * s for s in steps], rtol=1e-9)


@pytest.mark.parametrize("name", ["v2.6.2_md_nve.out", "v7.1_md_nvt.out", "v9.1_md_xtb_npt_i.out",
                                  "v2022.1_md_blyp_nvt.out", "v2024.1_md_npt_i_restart.out"])  # fmt: skip
def test_run_without_band_edges_is_refused_with_the_reevaluate_command(name, tmp_path):
    run = tmp_path / "run"
    path = unpack(name, run)
    text = path.read_text()
    assert "Eigenvalues of the occupied subspace" not in text and not list(run.glob("*.MOLog"))
    level = MD_RUNS[name][1]
    with pytest.raises(FileNotFoundError) as exc:
        parse_run_dir(run)
    msg = str(exc.value)
    assert f"{path}: this run printed no band edges (no MOLog, no eigenvalue lists in the main output)" in msg
    want = level if level in ("xtb", "pbe") else "LEVEL"
    assert f"qdphonon reevaluate --run-dir {run} --level {want}" in msg
    assert "--molog" not in msg and "no completed MD force evaluation" not in msg


@pytest.mark.parametrize("name", sorted(OTHER_RUNS))
def test_other_run_types_are_refused_naming_the_run_type(name, tmp_path):
    run_type, line = OTHER_RUNS[name]
    run = tmp_path / "run"
    path = unpack(name, run)
    assert path.read_text().splitlines()[line - 1].split()[-1] == run_type
    for kw in ({}, {"outputs": [path.name]}):
        with pytest.raises(ValueError, match=rf"{re.escape(str(path))}: line {line}: CP2K run type {run_type} "
                           r"\('GLOBAL\| Run type'\), not MD"):  # fmt: skip
            parse_run_dir(run, **kw)


def ref_ot_lists(text: str) -> tuple[list[float], float]:
    """Occupied eigenvalues (Hartree) of the first list and the first unoccupied one, by this test's reading:
    every 8-decimal number between the two headers, whatever else stands between them."""
    occ = text.split("Eigenvalues of the occupied subspace", 1)[1].split("Fermi Energy", 1)[0]
    unocc = text.split("Lowest Eigenvalues of the unoccupied subspace", 1)[1]
    first = re.search(r"^\s+(-?\d+\.\d{8})\s*$", unocc, re.M)
    return [float(x) for x in re.findall(r"-?\d+\.\d{8}", occ.split("\n", 1)[1])], float(first.group(1))


def test_gpu_messages_inside_the_eigenvalue_list_are_skipped(tmp_path):
    """CP2K 9.1 GPU build (aiida-cp2k OT_v9.1.out): a 'Skipping GPU init' line opens the occupied list (131 in the file)."""
    path = unpack("v9.1_energy_ot_gpu.out", tmp_path)
    text = path.read_text()
    lines = text.splitlines()
    assert lines[2487].split()[-1] == "4560"  # line 2488: Number of occupied orbitals
    occ, lumo = ref_ot_lists(text)
    block = text.split("Eigenvalues of the occupied subspace", 1)[1].split("Fermi Energy", 1)[0]
    assert block.count("Skipping GPU init, should have already been initialized") == 1
    assert len(occ) == 4560
    (ev,) = read_main_output(path).evaluations
    hartree_eV = 27.211386245988
    assert ev.ot_n_occupied == 4560
    assert ev.ot_homo_eV == pytest.approx(occ[-1] * hartree_eV, abs=1e-6)
    assert ev.ot_lumo_eV == pytest.approx(lumo * hartree_eV, abs=1e-6)
    gap = float(lines[8487].split()[-1])  # line 8488: HOMO - LUMO gap [eV] :    0.009679
    assert ev.ot_lumo_eV - ev.ot_homo_eV == pytest.approx(gap, abs=1e-6)


@pytest.mark.parametrize("name", ["v2024.3_geo_opt.out", "v9.1_geo_opt.out"])
def test_eigenvalue_list_of_a_geo_opt(name, tmp_path):
    path = unpack(name, tmp_path)
    occ, lumo = ref_ot_lists(path.read_text())
    evs = [ev for ev in read_main_output(path).evaluations if ev.ot_homo_eV is not None]
    assert len(evs) == 1 and evs[0].ot_n_occupied == len(occ) == 6
    assert evs[0].ot_homo_eV == pytest.approx(occ[-1] * 27.211386245988, abs=1e-6)
    assert evs[0].ot_lumo_eV == pytest.approx(lumo * 27.211386245988, abs=1e-6)


def test_derived_2026_md_banner_gives_the_band_edges_of_the_2023_run(tmp_path):
    """2026.2's 'MD STEP: n / N' banner (derived fixture) changes nothing: band edges equal the MOLog's,
    read by the tests' own reader, and those of the real 2023.1 run it was derived from."""
    run = tmp_path / "run"
    out = unpack("v2026.2-derived_md_xtb.out", run)
    molog = unpack("v2026.2-derived_md_xtb-mo-1.MOLog", run, f"{ref_project(out.read_text())}-mo-1.MOLog")
    assert out.read_text().count(" MD STEP: ") == 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = parse_run_dir(run)
    homo = int(re.search(r"Number of electrons:\s+(\d+)", out.read_text()).group(1)) // 2
    ref = ref_molog_blocks(molog)
    assert result.cp2k_version == "2026.2" and result.level == "xtb" and list(result.band_edges.step) == list(range(21))
    np.testing.assert_allclose(result.band_edges.vbm_eV, [b[homo][0] for b in ref], atol=1e-8)
    np.testing.assert_allclose(result.band_edges.cbm_eV, [b[homo + 1][0] for b in ref], atol=1e-8)
    real = tmp_path / "real"
    with tarfile.open(DATA.parent / "cp2k-2023.1" / "xtb_cs4pbbr6_20steps" / "run.tar.xz") as tar:
        extract(tar, real)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = parse_run_dir(real)
    np.testing.assert_array_equal(result.band_edges.gap_eV, base.band_edges.gap_eV)
    np.testing.assert_array_equal(result.band_edges.time_fs, base.band_edges.time_fs)


def test_molog_older_than_8_2_is_named_unsupported(tmp_path):
    """A MOLog in the format of CP2K before 8.2 (derived from v8.1.0's qs_mo_io.F) next to a real 7.1 output."""
    run = tmp_path / "run"
    out = unpack("v7.1_md_nvt.out", run)
    molog = unpack("v8.1-derived_md-mo-1.MOLog", run, f"{ref_project(out.read_text())}-mo-1.MOLog")
    first = next(i for i, s in enumerate(molog.read_text().splitlines(), 1) if s.strip())
    with pytest.raises(UnsupportedMOLogFormat, match=rf"{re.escape(str(molog))}: line {first}: .*format not supported"
                       r".*CP2K version 7\.1"):  # fmt: skip
        parse_run_dir(run)


def test_on_scf_failure_help_says_what_the_csv_writes(tmp_path):
    """keep_flagged writes scf_converged as pandas writes a bool (False); the --help text says the same."""
    src = DATA.parent / "cp2k-2023.1" / "xtb_cs4pbbr6_scf_unconverged" / "run.tar.xz"
    with tarfile.open(src) as tar:
        extract(tar, tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = parse_run_dir(tmp_path / "run", on_scf_failure="keep_flagged")
    write_band_edges_csv(result, tmp_path / "be.csv")
    written = set(pd.read_csv(tmp_path / "be.csv", dtype=str)["scf_converged"])
    assert "False" in written and written <= {"True", "False"}
    assert "scf_converged=False" in settings.describe("scf.on_failure")
    assert "scf_converged=0" not in settings.describe("scf.on_failure")
    shutil.rmtree(tmp_path / "run")


GPU_LINE = " Skipping GPU init, should have already been initialized "


def test_library_messages_in_the_middle_of_eigenvalue_lists_change_nothing(tmp_path):
    """The real 2023.1 PBE/OT run with ELPA's GPU message (the string of a real 9.1 GPU output) put after the
    2nd row of every occupied list and after the header of every unoccupied list: the same band edges."""
    src = DATA.parent / "cp2k-2023.1" / "pbe_cs4pbbr6_ot" / "run.tar.xz"
    runs = {}
    for name in ("clean", "gpu"):
        with tarfile.open(src) as tar:
            extract(tar, tmp_path / name)
        runs[name] = tmp_path / name
    out = runs["gpu"] / "seg000.out"
    lines, edited, k = out.read_text().split("\n"), [], None
    for i, line in enumerate(lines):
        edited.append(line)
        if "Eigenvalues of the occupied subspace" in line:
            k = i + 3  # header, dash line, two rows of eigenvalues
        elif "Lowest Eigenvalues of the unoccupied subspace" in line:
            edited.append(GPU_LINE)
        if i == k:
            edited.append(GPU_LINE)
    n = sum(1 for s in lines if "Eigenvalues of the occupied subspace" in s)
    assert n >= 5 and len(edited) == len(lines) + 2 * n
    out.write_text("\n".join(edited))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clean, gpu = parse_run_dir(runs["clean"]), parse_run_dir(runs["gpu"])
    assert "MO_CUBES" in gpu.band_edges.source and gpu.band_edges.step.size == n
    for f in ("step", "vbm_eV", "cbm_eV", "gap_eV"):
        np.testing.assert_array_equal(getattr(gpu.band_edges, f), getattr(clean.band_edges, f))


@pytest.mark.parametrize("name, want", [
    ("v7.1_md_nvt.out", "this run printed no band edges (no MOLog, no eigenvalue lists in the main output); "
                        "compute them along its trajectory with: qdphonon reevaluate --run-dir {run} --level pbe"),
    ("v2024.3_geo_opt.out", "line 55: CP2K run type GEO_OPT ('GLOBAL| Run type'), not MD"),
])  # fmt: skip
def test_parse_cp2k_command_prints_the_refusal(name, want, tmp_path, capsys):
    from qdphonon.cli import main

    run = tmp_path / "run"
    unpack(name, run)
    assert main(["parse-cp2k", "--run-dir", str(run), "--out", str(tmp_path / "be.csv")]) != 0
    err = capsys.readouterr().err
    assert want.format(run=run) in err and "Traceback" not in err
    assert not (tmp_path / "be.csv").exists()


def test_empty_unoccupied_list_of_cp2k_2_6_invents_no_lumo(tmp_path):
    """CP2K 2.6.2 GEO_OPT (NOMAD H2O.out): 101 lists whose unoccupied part is a header and nothing else. The
    last list's HOMO is read (line 30441: -0.24933184 Ha), and no number after the header is taken as a LUMO."""
    path = unpack("v2.6.2_geo_opt.out", tmp_path)
    lines = path.read_text().splitlines()
    assert lines[30440].split()[-1] == "-0.24933184" and "unoccupied" in lines[30443]
    assert sum("Lowest eigenvalues of the unoccupied subspace" in s for s in lines) == 101
    evs = [ev for ev in read_main_output(path).evaluations if ev.ot_homo_eV is not None]
    assert evs and all(ev.ot_lumo_eV is None for ev in evs)
    assert evs[-1].ot_homo_eV == pytest.approx(-0.24933184 * 27.211386245988, abs=1e-6) and evs[-1].ot_n_occupied == 4
