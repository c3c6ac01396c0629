"""An isolated dot's MD holds no rigid motion, with real CP2K (GFN1-xTB, Cs4PbBr6, 11 atoms).

The generated MD input sets ``ANGVEL_ZERO``, ``ANGVEL_TOL`` and ``COMVEL_TOL`` (docs/physics.md
§1.5). Without them the CSVR thermostat heats the dot's rigid rotation too: in a real run 46.5 %
of the kinetic energy ended up there and the internal motion ran at about half of T_md. Read
independently from the printed velocities and positions: the rigid (translation + rotation)
share of the kinetic energy must stay under 1 %, and the internal kinetic temperature, averaged
over the second half of 400 steps with 3N - 6 degrees of freedom, within 5 % of T_md.

The internal temperature's tolerance is a statistical one: 27 degrees of freedom fluctuate by
sqrt(2/27) = 27 % per frame; with the 100 fs CSVR time constant the 200 averaged frames (400 fs)
hold ~4 independent thermostat periods and far more vibrational periods (the modes are 8-30 meV,
140-500 fs), so the mean's standard error is ~3 %: 5 % is a ~1.7-sigma band. The run is
deterministic (fixed seed), so the test cannot be lucky twice.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import installed_xmlspec
from qdphonon.engines.cp2k import run_cp2k
from qdphonon.structures.io import read_structure

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1" / "structures"
T_MD_K = 10.0
STEPS = 400
AMU_A2_PER_FS2_IN_EV = 103.642696562  # 1 amu (A/fs)^2 in eV
K_B_EV_PER_K = 8.617333262e-5
MASSES_AMU = {"Cs": 132.90545196, "Pb": 207.2, "Br": 79.904}


def _frames(path: Path) -> np.ndarray:
    """Every frame of a CP2K XYZ file as (frames, atoms, 3), read line by line (not our parser)."""
    lines = path.read_text().splitlines()
    n = int(lines[0])
    out = []
    for k in range(0, len(lines), n + 2):
        out.append([[float(x) for x in line.split()[1:4]] for line in lines[k + 2:k + 2 + n]])
    return np.array(out)


def _rigid_and_internal_ke(r: np.ndarray, v: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """Kinetic energy of one frame's rigid motion (COM + rotation) and of the rest, in eV."""
    r = r - (m[:, None] * r).sum(0) / m.sum()
    v_com = (m[:, None] * v).sum(0) / m.sum()
    ang = (m[:, None] * np.cross(r, v - v_com)).sum(0)
    inertia = (m * (r * r).sum(1)).sum() * np.eye(3) - np.einsum("a,ai,aj->ij", m, r, r)
    omega = np.linalg.solve(inertia, ang)
    v_int = v - v_com - np.cross(omega, r)
    total = 0.5 * AMU_A2_PER_FS2_IN_EV * (m[:, None] * v * v).sum()
    internal = 0.5 * AMU_A2_PER_FS2_IN_EV * (m[:, None] * v_int * v_int).sum()
    return total - internal, internal


@pytest.mark.cp2k
def test_isolated_dot_md_keeps_no_rigid_motion(tmp_path, cp2k_exe):
    dot = read_structure(DATA / "cspbbr3_1x1x1_xtb_relaxed.xyz")
    spec, _ = installed_xmlspec()
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                           md=MDSettings(temperature_K=T_MD_K, timestep_fs=2.0, steps=STEPS,
                                         trajectory_every_steps=1, trajectory_format="xyz"),
                           scf=SCFSettings())  # fmt: skip
    inp = tmp_path / "md.inp"
    inp.write_text("! qdphonon MD input, level xtb\n" + render_tree(tree, spec))
    run_cp2k(inp, tmp_path / "run", tasks=2, mpi="mpirun", poll_s=0.2)

    run = tmp_path / "run"
    r = _frames(next(run.glob("*-pos-1.xyz")))
    v_bohr_per_au = _frames(next(run.glob("*-vel-1.xyz")))
    v = v_bohr_per_au * 0.529177210903 / 0.02418884326585747  # bohr/au_t -> A/fs
    assert r.shape == v.shape == (STEPS + 1, 11, 3)
    m = np.array([MASSES_AMU[s] for s in dot.symbols])
    rigid, internal = np.array([_rigid_and_internal_ke(r[k], v[k], m) for k in range(len(r))]).T
    assert np.max(rigid / (rigid + internal)) < 0.01
    t_internal_K = 2 * internal / ((3 * 11 - 6) * K_B_EV_PER_K)
    mean_K = t_internal_K[STEPS // 2:].mean()
    assert abs(mean_K - T_MD_K) < 0.05 * T_MD_K, f"internal temperature {mean_K:.2f} K vs T_md {T_MD_K} K"
