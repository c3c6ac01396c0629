"""parse-cp2k on CP2K directories our engine did not make: real CP2K 2023.1 run by hand in the test
(another project name, another MO file name, a kill and a continuation made by hand), and a real
PBE/OT run whose band edges are only in its main output. Band edges are compared with an
independent reading of the files (plain regular expressions, no qdphonon parser)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qdphonon.cli import main
from test_parsers import ref_molog_blocks
from archives import extract
from cp2k_slices import held_cp2k, run_in_slices_until

DATA = Path(__file__).parent / "data" / "cp2k-2023.1"


def independent_molog_edges(molog: Path, homo: int) -> list[tuple[float, float]]:
    """(HOMO eV, LUMO eV) of every MD block of a MOLog, in file order, by the tests' own reader."""
    return [(b[homo][0], b[homo + 1][0]) for b in ref_molog_blocks(molog)]


def independent_homo(out: Path) -> int:
    return int(re.search(r"Number of electrons:\s+(\d+)", out.read_text()).group(1)) // 2


def hand_made_input(tmp: Path, steps: int) -> str:
    """An xTB MD input of Cs4PbBr6 with project 'qd' and MO file name 'orbitals', as a user edits one."""
    xyz = tmp / "dot.xyz"
    subprocess.run(["qdphonon", "build", "--size", "1", "1", "1", "--out", str(xyz)], check=True)
    subprocess.run(["qdphonon", "cp2k-input", "--structure", str(xyz), "--level", "xtb", "--steps", str(steps),
                    "--trajectory-every-steps", "1", "--out", str(tmp / "gen.inp")], check=True)  # fmt: skip
    text = (tmp / "gen.inp").read_text()
    text = re.sub(r"(?im)^(\s*PROJECT_NAME\s+)\S+", r"\1qd", text)
    text, n = re.subn(r"(?im)^(\s*FILENAME\s+)mo\s*$", r"\1orbitals", text)
    assert n == 1
    return text


def parse_cli(run_dir: Path, out: Path, *extra: str) -> pd.DataFrame:
    assert main(["parse-cp2k", "--run-dir", str(run_dir), "--out", str(out), *extra]) == 0
    return pd.read_csv(out)


@pytest.mark.cp2k
def test_xtb_run_made_by_hand_with_other_names(tmp_path, cp2k_exe):
    run = tmp_path / "run"
    run.mkdir()
    (run / "job.inp").write_text(hand_made_input(tmp_path, 12))
    subprocess.run([cp2k_exe, "-i", "job.inp", "-o", "job.log"], cwd=run, check=True, timeout=600,
                   capture_output=True)  # fmt: skip
    assert (run / "qd-orbitals-1.MOLog").is_file() and (run / "qd-1.ener").is_file()
    df = parse_cli(run, tmp_path / "be.csv")
    meta = json.loads((tmp_path / "be.json").read_text())
    assert meta["project"] == "qd" and meta["main_outputs"] == ["job.log"] and meta["level"] == "xtb"
    assert meta["files"]["molog"] == "qd-orbitals-1.MOLog" and meta["synthetic"] is False
    ref = independent_molog_edges(run / "qd-orbitals-1.MOLog", independent_homo(run / "job.log"))
    assert list(df["step"]) == list(range(13)) and len(ref) == 13
    np.testing.assert_allclose(df["vbm_eV"], [r[0] for r in ref], atol=1e-7)
    np.testing.assert_allclose(df["cbm_eV"], [r[1] for r in ref], atol=1e-7)
    np.testing.assert_allclose(df["time_fs"], 2.0 * df["step"])


@pytest.mark.cp2k
def test_killed_run_continued_by_hand(tmp_path, cp2k_exe):
    """SIGKILL part-way, then a continuation the way the CP2K manual says (EXT_RESTART from the
    restart file, same directory, new main output); every step once, equal to an uninterrupted run."""
    text = hand_made_input(tmp_path, 20)
    whole, run = tmp_path / "whole", tmp_path / "run"
    for d in (whole, run):
        d.mkdir()
        (d / "md.inp").write_text(text)
    subprocess.run([cp2k_exe, "-i", "md.inp", "-o", "first.out"], cwd=whole, check=True, timeout=600,
                   capture_output=True)  # fmt: skip
    proc = subprocess.Popen([str(held_cp2k(tmp_path / "bin")), "-i", "md.inp", "-o", "first.out"], cwd=run,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    ener = run / "qd-1.ener"
    run_in_slices_until(proc.pid, lambda: ener.is_file() and len(ener.read_text().splitlines()) >= 9, proc, 300)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "CP2K finished before the kill; the test needs a longer run"
    restart = (run / "qd-1.restart").read_text()
    k = int(re.search(r"STEP_START_VAL\s+(\d+)", restart).group(1))
    assert 0 < k < 20
    cont = re.sub(r"(?im)^(\s*STEPS\s+)\d+", rf"\g<1>{20 - k}", text)
    cont = re.sub(r"(?im)^(\s*&CENTER_COORDINATES)\b.*$", r"\1 F", cont)
    cont += "&EXT_RESTART\n  RESTART_FILE_NAME qd-1.restart\n&END EXT_RESTART\n"
    (run / "cont.inp").write_text(cont)
    subprocess.run([cp2k_exe, "-i", "cont.inp", "-o", "second.out"], cwd=run, check=True, timeout=600,
                   capture_output=True)  # fmt: skip
    df = parse_cli(run, tmp_path / "be.csv")
    ref = parse_cli(whole, tmp_path / "whole.csv")
    meta = json.loads((tmp_path / "be.json").read_text())
    assert meta["main_outputs"] == ["first.out", "second.out"]
    assert list(df["step"]) == list(range(21)) == list(ref["step"])
    np.testing.assert_allclose(df["vbm_eV"], ref["vbm_eV"], atol=1e-4)
    np.testing.assert_allclose(df["gap_eV"], ref["gap_eV"], atol=1e-4)
    edges = independent_molog_edges(whole / "qd-orbitals-1.MOLog", independent_homo(whole / "first.out"))
    np.testing.assert_allclose(ref["vbm_eV"], [e[0] for e in edges], atol=1e-7)


def test_pbe_ot_band_edges_from_main_output_only(tmp_path):
    """A real PBE/OT run (fixture, CP2K 2023.1) with its main output renamed and no engine state:
    band edges come from the main output's Fermi energy (HOMO) and HOMO-LUMO gap lines."""
    run = tmp_path / "pbe"
    run.mkdir()
    with tarfile.open(DATA / "pbe_cs4pbbr6_ot" / "run.tar.xz") as tar:
        extract(tar, run)
    shutil.move(run / "seg000.out", run / "cp2k output.txt")
    for p in run.glob("seg*.inp"):
        p.unlink()
    df = parse_cli(run, tmp_path / "be.csv")
    text = (run / "cp2k output.txt").read_text()
    fermi = [float(x) for x in re.findall(r"Fermi Energy \[eV\]\s*:\s*(\S+)", text)]
    gap = [float(x) for x in re.findall(r"HOMO - LUMO gap \[eV\]\s*:\s*(\S+)", text)]
    assert len(df) == len(fermi) == len(gap) >= 2
    np.testing.assert_allclose(df["gap_eV"], gap, atol=2e-6)
    np.testing.assert_allclose(df["vbm_eV"], fermi, atol=2e-6)
    meta = json.loads((tmp_path / "be.json").read_text())
    assert meta["level"] == "pbe" and meta["main_outputs"] == ["cp2k output.txt"]


def test_missing_piece_is_named(tmp_path):
    run = tmp_path / "empty"
    run.mkdir()
    (run / "notes.txt").write_text("no CP2K here\n")
    assert main(["parse-cp2k", "--run-dir", str(run), "--out", str(tmp_path / "x.csv")]) == 1
