"""Reading single points: the OT eigenvalue print of a real CP2K 2023.1 PBE output (tests/data fixture)
against the output's own 'HOMO - LUMO gap' line; cut-short forces prints are incomplete, not wrong."""

import re
import tarfile
from pathlib import Path

import numpy as np
import pytest

from qdphonon.parsers.single_point import SinglePointIncomplete, _ot_levels, read_forces, read_single_point
from archives import extract

DATA = Path(__file__).parent / "data" / "cp2k-2023.1"


def test_ot_levels_of_a_real_pbe_output_give_its_printed_gap(tmp_path):
    with tarfile.open(DATA / "pbe_cs4pbbr6_ot" / "run.tar.xz") as tar:
        text = tar.extractfile("seg000.out").read().decode()
    lines = text.splitlines()
    gaps = [float(m.group(1)) for ln in lines if (m := re.search(r"HOMO - LUMO gap \[eV\] :\s+(\S+)", ln))]
    cut = next(i for i, ln in enumerate(lines) if "HOMO - LUMO gap" in ln)
    occ, unocc = _ot_levels(lines[: cut + 1])
    assert len(occ) == 41 and len(unocc) == 1  # 82 valence electrons (Cs q9, Pb q4, Br q7)
    assert unocc[0] - occ[-1] == pytest.approx(gaps[0], abs=2e-6)
    occ_last, unocc_last = _ot_levels(lines)
    assert unocc_last[0] - occ_last[-1] == pytest.approx(gaps[-1], abs=2e-6)


FORCES = """
 ATOMIC FORCES in [a.u.]

 # Atom   Kind   Element          X                Y                Z
      1      1      Cs          0.0107297758     0.0107297758    -0.0107297758
      2      2      Pb          0.0000000000     0.0000000000     0.0000000000
"""


def test_forces_print_cut_short_is_incomplete(tmp_path):
    p = tmp_path / "sp-forces-1_0.xyz"
    p.write_text(FORCES)
    with pytest.raises(SinglePointIncomplete, match="SUM OF ATOMIC FORCES"):
        read_forces(p)
    p.write_text(FORCES + " SUM OF ATOMIC FORCES  0.0107297758 0.0107297758 -0.0107297758 0.018\n")
    symbols, f = read_forces(p)
    assert symbols == ["Cs", "Pb"]
    assert f[0, 0] == pytest.approx(0.0107297758 * 51.422067476, rel=1e-9)  # Hartree/bohr in eV/A (CODATA 2018)
    assert np.all(f[1] == 0)


def test_missing_output_is_incomplete(tmp_path):
    with pytest.raises(SinglePointIncomplete, match="no main output"):
        read_single_point(tmp_path)


def test_wall_time_is_cp2ks_own_total_time_of_a_real_single_point(tmp_path):
    """validation/pbe_n1_harmonic's reference single point: its timing report's CP2K row says 17.137 s."""
    archive = Path(__file__).resolve().parents[1] / "validation" / "pbe_n1_harmonic" / "pbe_n1_harmonic.tar.xz"
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("harmonic/cspbbr3_1x1x1/sp/ref/")]
        extract(tar, tmp_path, members=members)
    ref = tmp_path / "harmonic/cspbbr3_1x1x1/sp/ref"
    assert read_single_point(ref).wall_s == pytest.approx(17.137)
    out = ref / "sp.out"
    text = out.read_text()
    out.write_text(text.replace(" CP2K                                 1  1.0", " XXXX                                 1  1.0"))
    assert read_single_point(ref).wall_s is None
