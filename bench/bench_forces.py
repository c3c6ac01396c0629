"""Force accuracy of CP2K PBE candidate settings against a tight reference (what the harmonic route needs).

The harmonic route (docs/physics.md) builds the Hessian from finite differences of forces, so a
setting is good enough when the *changes* of the forces with small displacements are right, not
only the gap. Snapshots: the relaxed dot (snapshot 1), ``--snapshots - 2`` copies with random
Cartesian displacements of ``--rms-displacement-A`` per component (seeded; about the thermal
amplitude at 10 K), and one small rigid rotation of the relaxed dot (``--rotation-deg``), all
evaluated through CP2K's ``REFTRAJ`` ensemble with every candidate of ``bench_cp2k.py`` named by
``--only`` and with its ``reference`` (7 A vacuum, 400/50 Ry, EPS_SCF 1e-8). Reported per candidate:

- ``residual_meV_per_A``: the largest force component at the relaxed geometry (reference's and
  candidate's); a finite-difference step must move the forces well beyond it.
- ``force_rms_error_meV_per_A``: rms over all snapshots and components of F_cand - F_ref.
- ``curvature_error``: for each displaced snapshot k, the curvature along its displacement
  kappa_k = -du_k.(F_k - F_1)/|du_k|^2 (a force constant, eV/A^2); the rms relative error of
  kappa against the reference. Frequencies go as sqrt(kappa), so their relative error is about
  half of it.
- ``rotation_curvature_eV_per_A2``: kappa along the rigid rotation, which is zero for an exact
  calculation (rotational invariance); a nonzero value is the grid's egg-box error, to compare
  with the softest curvature of the dot.

    python bench/bench_forces.py --relaxed RELAXED.xyz --only tuned tuned_c200 tuned_v4 [--snapshots 6]

CP2K runs one at a time under ``flock /tmp/qdphonon-cp2k.lock``. Results go to
``bench/cp2k_bench.json`` (key ``forces``); ``--report`` prints the Markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_cp2k as bc  # noqa: E402

from qdphonon.cp2k.xmlspec import installed_xmlspec, render_input  # noqa: E402
from qdphonon.structures.io import read_structure, write_structure  # noqa: E402

HARTREE_PER_BOHR_IN_EV_PER_A = 51.42208619083232


def snapshots(relaxed: np.ndarray, count: int, rms_A: float, rotation_deg: float, seed: int) -> list[np.ndarray]:
    """Relaxed frame, ``count - 2`` randomly displaced frames, one rigidly rotated frame (about the centroid, z axis)."""
    rng = np.random.default_rng(seed)
    frames = [relaxed.copy()]
    frames += [relaxed + rng.normal(0.0, rms_A, relaxed.shape) for _ in range(count - 2)]
    c = relaxed.mean(0)
    a = np.deg2rad(rotation_deg)
    rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    frames.append((relaxed - c) @ rot.T + c)
    return frames


def read_forces_eV_per_A(path: Path, n_atoms: int) -> np.ndarray:
    """Every frame of a CP2K ``*-frc-1.xyz`` (Hartree/bohr) as (frames, atoms, 3) in eV/A."""
    lines = path.read_text().splitlines()
    frames = []
    for k in range(0, len(lines) - n_atoms - 1, n_atoms + 2):
        frames.append([[float(x) for x in ln.split()[1:4]] for ln in lines[k + 2 : k + 2 + n_atoms]])
    return np.array(frames) * HARTREE_PER_BOHR_IN_EV_PER_A


def evaluate(level: str, c: bc.Candidate, frames: list[np.ndarray], symbols: list[str], relaxed_xyz: Path,
             start_wfn: Path | None) -> dict:
    """Forces of every snapshot with one candidate (REFTRAJ, forces printed every step)."""
    d = bc.WORK / f"forces_{level}_{c.name}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    dot = read_structure(bc.structure_for(1, c.vacuum_A, relaxed_xyz))
    shift = 0.5 * dot.box_A - 0.5 * (frames[0].min(0) + frames[0].max(0))
    with open(d / "snapshots.xyz", "w") as fh:
        for i, pos in enumerate(frames):
            fh.write(f"{len(symbols)}\n i = {i}\n")
            fh.writelines(f"{s} {x:.10f} {y:.10f} {z:.10f}\n" for s, (x, y, z) in zip(symbols, pos + shift))
    first = d / "frame1.xyz"
    write_structure(dataclasses.replace(dot, positions_A=frames[0] + shift), first)
    wfn = None
    if start_wfn is not None and start_wfn.is_file():
        shutil.copy(start_wfn, d / "start.wfn")
        wfn = "start.wfn"
    reftraj = {"traj_file_name": "snapshots.xyz", "eval_energy_forces": True, "eval_forces": True, "first_snapshot": 1,
               "last_snapshot": len(frames), "stride": 1}  # fmt: skip
    tree = bc.md_tree(level, c, first, len(frames) - 1, wfn, reftraj)
    tree["motion"]["print"]["forces"] = {"_": "ON", "format": "XYZ", "each": {"md": 1}}
    tree["force_eval"]["subsys"]["topology"] = {"center_coordinates": {"_": False}}
    for key in ("angvel_zero", "angvel_tol", "comvel_tol"):
        tree["motion"]["md"].pop(key, None)
    spec, _ = installed_xmlspec()
    (d / "md.inp").write_text(render_input(tree, spec))
    wall = bc.run_cp2k(d, c)
    text = (d / "md.out").read_text(errors="replace")
    if start_wfn is not None and not start_wfn.is_file():
        wfns = sorted(d.glob("*-RESTART.wfn"))
        if wfns:
            shutil.copy(wfns[0], start_wfn)
    return {"level": level, "candidate": c.name, "frames": len(frames), "wall_s": round(wall, 1), **read_workdir(d, len(symbols)),
            "unconverged": len(re.findall(r"SCF run NOT converged", text))}  # fmt: skip


def read_workdir(d: Path, n_atoms: int) -> dict:
    """Forces (eV/A) and energies (Ha) of every snapshot from a finished REFTRAJ work directory.
    All-zero forces mean CP2K did not evaluate them (REFTRAJ without EVAL_FORCES): recorded as None."""
    forces = read_forces_eV_per_A(next(d.glob("*-frc-1.xyz")), n_atoms)
    energies = [float(e) for e in re.findall(r"E =\s+(\S+)", next(d.glob("*-pos-1.xyz")).read_text())]
    return {"forces_eV_per_A": forces.round(7).tolist() if np.any(forces) else None, "energies_Ha": energies}


def energy_metrics(cand: dict, ref: dict, frames: list[np.ndarray]) -> dict:
    """Curvatures from energies alone: kappa_k = 2 (E_k - E_1) / |du_k|^2 (eV/A^2) along each displaced
    snapshot (the relaxed frame's residual gradient enters at first order, the same for every setting),
    and along the rigid rotation (zero for an exact calculation)."""
    HA_eV = 27.211386245988
    du2 = np.array([((f - frames[0]) ** 2).sum() for f in frames[1:]])
    kc = 2 * (np.asarray(cand["energies_Ha"][1:]) - cand["energies_Ha"][0]) * HA_eV / du2
    kr = 2 * (np.asarray(ref["energies_Ha"][1:]) - ref["energies_Ha"][0]) * HA_eV / du2
    rel = (kc[:-1] - kr[:-1]) / kr[:-1]
    return {"energy_curvature_eV_per_A2_reference": [round(float(x), 4) for x in kr[:-1]],
            "energy_curvature_error": round(float(np.sqrt((rel**2).mean())), 4),
            "energy_rotation_curvature_eV_per_A2": round(float(kc[-1]), 5)}  # fmt: skip


def metrics(cand: dict, ref: dict, frames: list[np.ndarray]) -> dict:
    """The force-accuracy numbers of one candidate against the reference (see the module docstring)."""
    fc, fr = np.asarray(cand["forces_eV_per_A"]), np.asarray(ref["forces_eV_per_A"])
    du = [f - frames[0] for f in frames[1:]]

    def kappa(f: np.ndarray) -> np.ndarray:
        return np.array([-(u * (f[k + 1] - f[0])).sum() / (u * u).sum() for k, u in enumerate(du)])

    kc, kr = kappa(fc), kappa(fr)
    rel = (kc[:-1] - kr[:-1]) / kr[:-1]
    return {
        "residual_meV_per_A": round(1e3 * float(np.abs(fc[0]).max()), 2),
        "reference_residual_meV_per_A": round(1e3 * float(np.abs(fr[0]).max()), 2),
        "force_rms_error_meV_per_A": round(1e3 * float(np.sqrt(((fc - fr) ** 2).mean())), 2),
        "curvature_eV_per_A2_reference": [round(float(x), 4) for x in kr[:-1]],
        "curvature_error": round(float(np.sqrt((rel**2).mean())), 4),
        "rotation_curvature_eV_per_A2": round(float(kc[-1]), 5),
        "reference_rotation_curvature_eV_per_A2": round(float(kr[-1]), 5),
    }


def report(data: dict, frames: list[np.ndarray]) -> str:
    rows = {r["candidate"]: r for r in data.get("forces", [])}
    ref = rows.get("reference")
    if ref is None:
        return "no reference force evaluation recorded"
    timing = {r["candidate"]: r for r in data["timing"] if r["level"] == "pbe" and r["size"] == 1}
    if ref.get("forces_eV_per_A") is None:
        out = ["Forces were not printed (recorded as None); curvatures from energies only.", "",
               "| setting | wall s (all snapshots) | curvature error (≈ 2× frequency error) | rigid-rotation curvature eV/Å² |",
               "|---|---|---|---|"]  # fmt: skip
        for name, r in rows.items():
            m = energy_metrics(r, ref, frames)
            out.append(f"| {name} | {r['wall_s']} | {100 * m['energy_curvature_error']:.2f} % | "
                       f"{m['energy_rotation_curvature_eV_per_A2']} |")
        m = energy_metrics(ref, ref, frames)
        out.append(f"\nReference curvatures along the random displacements: "
                   f"{', '.join(f'{k:.3f}' for k in m['energy_curvature_eV_per_A2_reference'])} eV/Å².")
        return "\n".join(out)
    out = ["| setting | s/step | largest residual force meV/Å | force rms error meV/Å | curvature error "
           "(≈ 2× frequency error) | rigid-rotation curvature eV/Å² |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if name == "reference":
            continue
        m = metrics(r, ref, frames)
        out.append(f"| {name} | {bc._cell(timing.get(name, {}).get('s_per_step'))} | {m['residual_meV_per_A']} | "
                   f"{m['force_rms_error_meV_per_A']} | {100 * m['curvature_error']:.1f} % | "
                   f"{m['rotation_curvature_eV_per_A2']} |")  # fmt: skip
    m = metrics(ref, ref, frames)
    out.append(f"\nReference: largest residual force {m['residual_meV_per_A']} meV/Å, rigid-rotation curvature "
               f"{m['rotation_curvature_eV_per_A2']} eV/Å², curvatures along the random displacements "
               f"{min(m['curvature_eV_per_A2_reference']):.3f}–{max(m['curvature_eV_per_A2_reference']):.3f} eV/Å².")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--relaxed", type=Path, required=True, help="relaxed PBE structure (extended XYZ)")
    p.add_argument("--only", nargs="*", default=["tuned", "tuned_c200", "tuned_v4"])
    p.add_argument("--snapshots", type=int, default=6)
    p.add_argument("--rms-displacement-A", type=float, default=0.02)
    p.add_argument("--rotation-deg", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--report", action="store_true", help="print the table from bench/cp2k_bench.json")
    p.add_argument("--reread", type=Path, default=None,
                   help="record the rows from finished work directories under this folder (forces_pbe_<candidate>) "
                        "without running CP2K")
    args = p.parse_args(argv)
    dot = read_structure(args.relaxed)
    symbols, relaxed = list(dot.symbols), np.asarray(dot.positions_A, dtype=float)
    frames = snapshots(relaxed, args.snapshots, args.rms_displacement_A, args.rotation_deg, args.seed)
    data = bc.load()
    if args.report:
        print(report(data, frames))
        return 0
    if args.reread is not None:
        for name in ["reference", *[n for n in args.only if n != "reference"]]:
            d = args.reread / f"forces_pbe_{name}"
            wall = next((r["wall_s"] for r in data.get("forces", []) if r["candidate"] == name), None)
            row = {"level": "pbe", "candidate": name, "frames": len(frames), "wall_s": wall, **read_workdir(d, len(symbols)),
                   "unconverged": len(re.findall(r"SCF run NOT converged", (d / "md.out").read_text(errors="replace"))),
                   "snapshots": {"count": args.snapshots, "rms_displacement_A": args.rms_displacement_A,
                                 "rotation_deg": args.rotation_deg, "seed": args.seed}}  # fmt: skip
            data["forces"] = [r for r in data.get("forces", []) if r["candidate"] != name] + [row]
        bc.save(data)
        print(report(data, frames))
        return 0
    bc.WORK.mkdir(parents=True, exist_ok=True)
    start_wfn = bc.WORK / "start_forces_pbe_n1.wfn"
    for name in ["reference", *[n for n in args.only if n != "reference"]]:
        row = evaluate("pbe", bc.PBE[name], frames, symbols, args.relaxed, start_wfn)
        row["snapshots"] = {"count": args.snapshots, "rms_displacement_A": args.rms_displacement_A,
                            "rotation_deg": args.rotation_deg, "seed": args.seed}  # fmt: skip
        data["forces"] = [r for r in data.get("forces", []) if r["candidate"] != name] + [row]
        bc.save(data)
        print(name, row["wall_s"], "s", flush=True)
    print(report(data, frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
