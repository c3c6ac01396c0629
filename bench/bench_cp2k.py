"""CP2K cost and accuracy of candidate input settings, measured side by side in one run.

Timing: for each candidate, a short NVT MD (10 K) of one dot, every candidate starting from the
same converged wavefunction (a ``.wfn`` holds basis coefficients, so it does not depend on the
box or the cutoff), so the first step's time measures the guess and the later steps the
steady state. Reported per candidate: seconds per MD step (median of steps >= 2), SCF
iterations per step, seconds per SCF iteration, the first step's time, and the ratio to the
previous default measured in the same run.

Accuracy (what the analysis sees): the same snapshots of one trajectory are re-evaluated with
each candidate and with a tight reference (larger box, higher cutoff, EPS_SCF 1e-8) through
CP2K's ``REFTRAJ`` ensemble; for the gap, HOMO and LUMO: the mean offset from the reference and
the rms of the de-meaned difference (the fluctuation error) as a fraction of the reference's
standard deviation over the snapshots.

    python bench/bench_cp2k.py timing --level pbe --size 1 [--steps 8] [--only NAME ...]
    python bench/bench_cp2k.py accuracy --level pbe --size 1 --trajectory POS.xyz [--snapshots 10]
    python bench/bench_cp2k.py report            # Markdown tables from bench/cp2k_bench.json
    python bench/bench_cp2k.py record --level pbe --size 1 --current NAME [--previous previous]

``record`` appends the measured steady-state cost of the candidate that the generated inputs now
use (``--current``, rows ``inputs=current``) and of the old default (``inputs=previous``) to the
cost model's data, ``workflow/qdphonon/data/cp2k_step_costs.csv`` (``qdphonon cost``).

CP2K runs one at a time under ``flock /tmp/qdphonon-cp2k.lock`` (2 MPI ranks unless a candidate
says otherwise). Results accumulate in ``bench/cp2k_bench.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow"))

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree, homo_index  # noqa: E402
from qdphonon.cp2k.xmlspec import cp2k_version, installed_xmlspec, render_input  # noqa: E402
from qdphonon.structures.build import build_quantum_dot  # noqa: E402
from qdphonon.structures.io import read_structure, write_structure  # noqa: E402
from qdphonon.structures.model import QuantumDotSpec  # noqa: E402

RESULTS = REPO / "bench" / "cp2k_bench.json"
WORK = Path(os.environ.get("QDPHONON_BENCH_WORK", "/tmp/qdphonon-bench-cp2k"))
LOCK = "/tmp/qdphonon-cp2k.lock"
NETLIB_DIRS = "/usr/lib/x86_64-linux-gnu/blas:/usr/lib/x86_64-linux-gnu/lapack"


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One input setting; ``None`` keeps the generator's value for this version."""

    name: str
    vacuum_A: float
    cutoff_Ry: float | None = None
    rel_cutoff_Ry: float | None = None
    eps_scf: float | None = None
    preconditioner: str | None = None
    minimizer: str | None = None
    poisson: str = "wavelet"
    aspc_order: int | None = None
    xc_smooth: bool = True
    ranks: int = 2
    threads: int = 1
    smearing_K: float | None = None
    mixing_alpha: float | None = None
    blas: str = "system"  # "reference": Debian's netlib BLAS/LAPACK forced with LD_LIBRARY_PATH

    def overrides(self, level: str) -> dict:
        dft: dict = {}
        if self.cutoff_Ry is not None or self.rel_cutoff_Ry is not None:
            dft["mgrid"] = {k: v for k, v in (("cutoff", self.cutoff_Ry), ("rel_cutoff", self.rel_cutoff_Ry)) if v}
        ot = {k: v for k, v in (("preconditioner", self.preconditioner), ("minimizer", self.minimizer)) if v}
        if ot:
            dft.setdefault("scf", {})["ot"] = ot
        if self.mixing_alpha is not None:
            dft.setdefault("scf", {})["mixing"] = {"alpha": self.mixing_alpha}
        if self.aspc_order is not None:
            dft["qs"] = {"extrapolation": "ASPC", "extrapolation_order": self.aspc_order}
        if level == "pbe" and not self.xc_smooth:
            dft["xc"] = {"xc_grid": None}
        out: dict = {"force_eval": {"dft": dft}} if dft else {}
        if self.poisson == "periodic":
            out.setdefault("force_eval", {}).setdefault("dft", {})["poisson"] = {"periodic": "XYZ", "psolver": "PERIODIC"}
            out["force_eval"]["subsys"] = {"cell": {"periodic": "XYZ"}}
        return out


# Previous default (before tuning), the reference, and the candidates, per level.
PBE = {
    "previous": Candidate("previous", 10.0, 400, 50, 1e-6, "FULL_ALL", blas="reference"),
    "previous_openblas": Candidate("previous_openblas", 10.0, 400, 50, 1e-6, "FULL_ALL"),
    "tuned": Candidate("tuned", 5.0, 250, 40, 1e-5, "FULL_SINGLE_INVERSE"),
    "tuned_reference_blas": Candidate("tuned_reference_blas", 5.0, 250, 40, 1e-5, "FULL_SINGLE_INVERSE",
                                      blas="reference"),
    "tuned_full_all": Candidate("tuned_full_all", 5.0, 250, 40, 1e-5, "FULL_ALL"),
    "tuned_eps1e-6": Candidate("tuned_eps1e-6", 5.0, 250, 40, 1e-6, "FULL_SINGLE_INVERSE"),
    "tuned_v4": Candidate("tuned_v4", 4.0, 250, 40, 1e-5, "FULL_SINGLE_INVERSE"),
    "tuned_c200": Candidate("tuned_c200", 5.0, 200, 40, 1e-5, "FULL_SINGLE_INVERSE"),
    "tuned_nosmooth": Candidate("tuned_nosmooth", 5.0, 250, 40, 1e-5, "FULL_SINGLE_INVERSE", xc_smooth=False),
    "tuned_1rank2thr": Candidate("tuned_1rank2thr", 5.0, 250, 40, 1e-5, "FULL_SINGLE_INVERSE", ranks=1, threads=2),
    "tuned_pbc": Candidate("tuned_pbc", 5.0, 250, 40, 1e-5, "FULL_SINGLE_INVERSE", poisson="periodic"),
    "reference": Candidate("reference", 7.0, 400, 50, 1e-8, "FULL_ALL"),
    "v5_c400": Candidate("v5_c400", 5.0, 400, 50, 1e-6, "FULL_ALL"),
    "v5_c300": Candidate("v5_c300", 5.0, 300, 40, 1e-6, "FULL_ALL"),
    "v4_c300": Candidate("v4_c300", 4.0, 300, 40, 1e-6, "FULL_ALL"),
    "v4_c250": Candidate("v4_c250", 4.0, 250, 40, 1e-6, "FULL_ALL"),
    "v4_c300_eps1e-5": Candidate("v4_c300_eps1e-5", 4.0, 300, 40, 1e-5, "FULL_ALL"),
    "v4_c300_fsi": Candidate("v4_c300_fsi", 4.0, 300, 40, 1e-6, "FULL_SINGLE_INVERSE"),
    "v4_c300_pbc": Candidate("v4_c300_pbc", 4.0, 300, 40, 1e-6, "FULL_ALL", poisson="periodic"),
    "v4_c300_nosmooth": Candidate("v4_c300_nosmooth", 4.0, 300, 40, 1e-6, "FULL_ALL", xc_smooth=False),
    "v4_c300_aspc2": Candidate("v4_c300_aspc2", 4.0, 300, 40, 1e-6, "FULL_ALL", aspc_order=2),
    "v4_c300_1rank2thr": Candidate("v4_c300_1rank2thr", 4.0, 300, 40, 1e-6, "FULL_ALL", ranks=1, threads=2),
}
XTB = {
    "previous": Candidate("previous", 10.0, eps_scf=1e-6, smearing_K=300.0, blas="reference"),
    "openblas": Candidate("openblas", 5.0, eps_scf=1e-6, smearing_K=300.0),
    "reference": Candidate("reference", 10.0, eps_scf=1e-8, smearing_K=300.0),
    "eps1e-5": Candidate("eps1e-5", 5.0, eps_scf=1e-5, smearing_K=300.0),
    "alpha0.2": Candidate("alpha0.2", 5.0, eps_scf=1e-6, smearing_K=300.0, mixing_alpha=0.2),
    "1rank2thr": Candidate("1rank2thr", 5.0, eps_scf=1e-6, smearing_K=300.0, ranks=1, threads=2),
    "1rank": Candidate("1rank", 5.0, eps_scf=1e-6, smearing_K=300.0, ranks=1, threads=1),
    "aspc3": Candidate("aspc3", 5.0, eps_scf=1e-6, smearing_K=300.0, aspc_order=3),
}
CANDIDATES = {"pbe": PBE, "xtb": XTB}


def structure_for(size: int, vacuum_A: float, relaxed: Path | None) -> Path:
    """The dot in a box with ``vacuum_A`` per side: the relaxed geometry when given, else the ideal cut."""
    path = WORK / f"n{size}_v{vacuum_A:g}.xyz"
    dot = build_quantum_dot(QuantumDotSpec(size=(size,) * 3, vacuum_A=vacuum_A))
    if relaxed is not None:
        rel = read_structure(relaxed)
        assert list(rel.symbols) == list(dot.symbols), "relaxed structure has other atoms"
        shift = 0.5 * (dot.box_A - rel.box_A)
        dot = dataclasses.replace(dot, positions_A=np.asarray(rel.positions_A) + shift)
    write_structure(dot, path)
    return path


def md_tree(level: str, c: Candidate, xyz: Path, steps: int, wfn: str | None, reftraj: dict | None = None):
    dot = read_structure(xyz)
    scf = SCFSettings(eps_scf=c.eps_scf or 1e-6, smearing_K=c.smearing_K if level == "xtb" else None)
    over = c.overrides(level)
    if wfn:
        over.setdefault("force_eval", {}).setdefault("dft", {})["wfn_restart_file_name"] = wfn
        over["force_eval"]["dft"].setdefault("scf", {})["scf_guess"] = "RESTART"
    tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level=level, run_type="MD",
                           md=MDSettings(steps=steps, temperature_K=10.0, trajectory_every_steps=1,
                                         trajectory_format="xyz"), scf=scf, overrides=over)  # fmt: skip
    if reftraj is not None:
        tree["motion"]["md"]["ensemble"] = "REFTRAJ"
        tree["motion"]["md"].pop("thermostat", None)
        tree["motion"]["md"]["reftraj"] = reftraj
    return tree


def run_cp2k(workdir: Path, c: Candidate) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(c.threads), "OMPI_ALLOW_RUN_AS_ROOT": "1",
           "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OPENBLAS_NUM_THREADS": "1"}  # fmt: skip
    if c.blas == "reference":
        env["LD_LIBRARY_PATH"] = f"{NETLIB_DIRS}:{env.get('LD_LIBRARY_PATH', '')}".rstrip(":")
    launch = ["mpirun", "--allow-run-as-root", "--bind-to", "none", "-np", str(c.ranks)] if c.ranks > 1 else []
    launch += ["-x", "LD_LIBRARY_PATH"] if c.ranks > 1 and "LD_LIBRARY_PATH" in env else []
    t0 = time.monotonic()
    with open(workdir / "md.out", "w") as out:
        subprocess.run(["flock", LOCK, *launch, "cp2k.psmp", "-i", "md.inp"], cwd=workdir, env=env, stdout=out,
                       stderr=subprocess.STDOUT, check=False)  # fmt: skip
    return time.monotonic() - t0


def step_seconds(ener_path: Path) -> list[float]:
    """Seconds each MD step took (steps >= 1), from the ``.ener`` file's last column (``UsedTime[s]``).

    Not ``MD| CPU time per MD step`` of the main output: CP2K prints there the running average
    since the start (165, 86, 62, 49 ... s while the steps took 165, 7.5, 13, 8.7 ... s)."""
    rows = [ln.split() for ln in ener_path.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [float(r[-1]) for r in rows if int(r[0]) >= 1]


def step_stats(out_text: str) -> dict:
    """Per MD step (step 0 first): SCF iterations, gap, HOMO (OT: Fermi energy)."""
    blocks = re.split(r"(?=MD\| Step number|\*\*\* SCF run converged in|outer SCF loop converged)", out_text)
    iters = [int(m) for m in re.findall(r"outer SCF loop converged in\s+\d+ iterations or\s+(\d+) steps", out_text)]
    if not iters:
        iters = [int(m) for m in re.findall(r"SCF run converged in\s+(\d+) steps", out_text)]
    gaps = [float(x) for x in re.findall(r"HOMO - LUMO gap \[eV\]\s*:\s*(\S+)", out_text)]
    del blocks
    it_s = [float(m) for m in re.findall(r"^\s+\d+ (?:OT \w+|[A-Za-z_]+/Diag\.)\s+\S+\s+([\d.]+)\s+\S+\s+-?[\d.]+",
                                          out_text, re.M)]  # fmt: skip
    return {"iterations": iters, "gap_eV": gaps, "iteration_s": it_s,
            "unconverged": len(re.findall(r"SCF run NOT converged", out_text))}  # fmt: skip


def timing(args, level: str, c: Candidate, start_wfn: Path | None) -> dict:
    d = WORK / f"timing_{level}_n{args.size}_{c.name}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    wfn = None
    if start_wfn is not None and start_wfn.is_file():
        shutil.copy(start_wfn, d / "start.wfn")
        wfn = "start.wfn"
    xyz = structure_for(args.size, c.vacuum_A, args.relaxed)
    spec, _ = installed_xmlspec()
    tree = md_tree(level, c, xyz, 0 if args.iterations_only else args.steps, wfn)
    if args.iterations_only:
        scf = tree["force_eval"]["dft"]["scf"]
        scf["max_scf"] = args.iterations_only
        scf.pop("outer_scf", None)
    (d / "md.inp").write_text(render_input(tree, spec))
    wall = run_cp2k(d, c)
    s = step_stats((d / "md.out").read_text(errors="replace"))
    ener = next(d.glob("*-1.ener"), None)
    s["cpu_s"] = step_seconds(ener) if ener is not None else []
    # cpu_s[i] is MD step i+1; the time to step 0 is the wall time minus the steps
    steady = s["cpu_s"][1:] or s["cpu_s"]
    it_steady = s["iterations"][2:] or s["iterations"]
    box = read_structure(xyz).box_A
    row = {
        "level": level, "size": args.size, "candidate": c.name, "settings": dataclasses.asdict(c),
        "box_A": round(box, 2), "wall_s": round(wall, 1), "steps": args.steps,
        "s_per_step": round(statistics.median(steady), 2) if steady else None,
        "iterations_per_step": statistics.median(it_steady) if it_steady else None,
        "first_step_s": round(wall - sum(s["cpu_s"]), 1) if s["cpu_s"] else None,
        "first_step_iterations": s["iterations"][0] if s["iterations"] else None,
        "unconverged_steps": s["unconverged"], "n_atoms": len(read_structure(xyz).symbols),
        "start": "shared converged wavefunction" if wfn else "input guess", "cp2k": cp2k_version("cp2k.psmp"),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }  # fmt: skip
    if s["iteration_s"]:
        row["s_per_iteration"] = round(statistics.median(s["iteration_s"][1:] or s["iteration_s"]), 3)
    if args.iterations_only:
        row.update(s_per_step=None, iterations_per_step=None, first_step_s=None, steps=0,
                   iterations_only=args.iterations_only)  # fmt: skip
    wfns = sorted(d.glob("*-RESTART.wfn"))
    if wfns and (start_wfn is not None and not start_wfn.is_file()):
        shutil.copy(wfns[0], start_wfn)
    return row


def accuracy(args, level: str, c: Candidate, frames: list[np.ndarray], symbols: list[str], start_wfn: Path | None):
    d = WORK / f"accuracy_{level}_n{args.size}_{c.name}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    xyz = structure_for(args.size, c.vacuum_A, args.relaxed)
    dot = read_structure(xyz)
    box = dot.box_A
    centred = [pos - 0.5 * (pos.min(0) + pos.max(0)) + 0.5 * box for pos in frames]
    with open(d / "snapshots.xyz", "w") as fh:
        for i, pos in enumerate(centred):
            fh.write(f"{len(symbols)}\n i = {i}\n")
            fh.writelines(f"{s} {x:.8f} {y:.8f} {z:.8f}\n" for s, (x, y, z) in zip(symbols, pos))
    xyz = d / "frame1.xyz"  # the input's coordinates are the first snapshot, so step 0 is frame 1 either way
    write_structure(dataclasses.replace(dot, positions_A=centred[0]), xyz)
    wfn = None
    if start_wfn is not None and start_wfn.is_file():
        shutil.copy(start_wfn, d / "start.wfn")
        wfn = "start.wfn"
    reftraj = {"traj_file_name": "snapshots.xyz", "eval_energy_forces": True, "first_snapshot": 1,
               "last_snapshot": len(frames), "stride": 1}  # fmt: skip
    spec, _ = installed_xmlspec()
    tree = md_tree(level, c, xyz, len(frames) - 1, wfn, reftraj)
    (d / "md.inp").write_text(render_input(tree, spec))
    wall = run_cp2k(d, c)
    text = (d / "md.out").read_text(errors="replace")
    homo = [float(x) for x in re.findall(r"Fermi Energy \[eV\]\s*:\s*(\S+)", text)]
    gaps = [float(x) for x in re.findall(r"HOMO - LUMO gap \[eV\]\s*:\s*(\S+)", text)]
    if level == "xtb" or not gaps:
        from qdphonon.parsers.molog import read_molog  # noqa: PLC0415

        blocks = [b for b in read_molog(next(d.glob("*.MOLog")))[0] if not b.guess and b.complete]
        nh = homo_index(symbols, level)
        homo = [b.orbital(nh)[0] for b in blocks]
        lumo = [b.orbital(nh + 1)[0] for b in blocks]
        gaps = [b - a for a, b in zip(homo, lumo)]
    else:
        lumo = [h + g for h, g in zip(homo, gaps)]
    return {"level": level, "size": args.size, "candidate": c.name, "frames": len(frames), "wall_s": round(wall, 1),
            "homo_eV": homo[: len(frames)], "lumo_eV": lumo[: len(frames)], "gap_eV": gaps[: len(frames)]}  # fmt: skip


def read_frames(path: Path, count: int, skip_fs: float, timestep_fs: float) -> tuple[list[str], list[np.ndarray]]:
    """``count`` evenly spaced frames of an XYZ trajectory after ``skip_fs``."""
    lines = path.read_text().splitlines()
    n = int(lines[0])
    frames, symbols = [], []
    for k in range(0, len(lines) - n - 1, n + 2):
        rows = [ln.split() for ln in lines[k + 2 : k + 2 + n]]
        symbols = [r[0] for r in rows]
        frames.append(np.array([[float(v) for v in r[1:4]] for r in rows]))
    step = re.search(r"i =\s*(\d+)", lines[1 + (n + 2)]) if len(frames) > 1 else None
    stride = int(step.group(1)) if step else 1
    first = int(skip_fs / timestep_fs / max(1, stride))
    pick = np.linspace(first, len(frames) - 1, count).round().astype(int)
    return symbols, [frames[i] for i in pick]


def fluctuation_metrics(cand: dict, ref: dict) -> dict:
    out = {}
    for q in ("gap_eV", "homo_eV", "lumo_eV"):
        a, b = np.asarray(cand[q]), np.asarray(ref[q])
        m = min(len(a), len(b))
        d = a[:m] - b[:m]
        sd = float(np.std(b[:m], ddof=1))
        out[q.replace("_eV", "")] = {"offset_meV": round(1e3 * float(d.mean()), 2),
                                     "fluct_error_frac": round(float(np.std(d - d.mean(), ddof=1)) / sd, 4),
                                     "ref_std_meV": round(1e3 * sd, 2)}  # fmt: skip
    return out


def load() -> dict:
    return json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"timing": [], "accuracy": []}


def save(data: dict) -> None:
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")


def _cell(value) -> str:
    return "–" if value is None else str(value)


def report(data: dict) -> str:
    acc = {(a["level"], a["size"], a["candidate"]): a for a in data["accuracy"]}
    lines = []
    for (level, size) in sorted({(r["level"], r["size"]) for r in data["timing"]}):
        rows = [r for r in data["timing"] if r["level"] == level and r["size"] == size]
        prev = next((r for r in rows if r["candidate"] == "previous"), None)
        ref = acc.get((level, size, "reference"))
        lines += [f"\n{level} n = {size} ({rows[0]['n_atoms']} atoms), CP2K {rows[0]['cp2k']}, 2 cores\n",
                  "| setting | box Å | ranks×threads | s/step | SCF it/step | s/it | first step s | ratio to previous "
                  "| gap offset meV | gap fluct. error | HOMO / LUMO fluct. error |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in rows:
            s = r["settings"]
            ratio = f"{prev['s_per_step'] / r['s_per_step']:.2f}×" if prev and prev.get("s_per_step") and r.get("s_per_step") else "–"
            a = acc.get((level, size, r["candidate"]))
            m = fluctuation_metrics(a, ref) if a and ref and a is not ref else None
            lines.append(
                f"| {r['candidate']} | {r['box_A']} | {s['ranks']}×{s['threads']} | {_cell(r['s_per_step'])} | "
                f"{_cell(r['iterations_per_step'])} | {_cell(r.get('s_per_iteration'))} | {_cell(r['first_step_s'])} | "
                f"{ratio} | "
                + (f"{m['gap']['offset_meV']} | {100 * m['gap']['fluct_error_frac']:.1f} % | "
                   f"{100 * m['homo']['fluct_error_frac']:.1f} / {100 * m['lumo']['fluct_error_frac']:.1f} % |"
                   if m else "– | – | – |"))  # fmt: skip
        if ref:
            lines.append(f"\nReference gap std over {ref['frames']} snapshots: "
                         f"{1e3 * float(np.std(ref['gap_eV'], ddof=1)):.1f} meV.")  # fmt: skip
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("part", choices=["timing", "accuracy", "report", "record"])
    p.add_argument("--current", default=None, help="record: the candidate the generated inputs use")
    p.add_argument("--previous", default="previous", help="record: the old default")
    p.add_argument("--level", choices=["pbe", "xtb"], default="pbe")
    p.add_argument("--size", type=int, default=1)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--iterations-only", type=int, default=0,
                   help="timing: only N SCF iterations of step 0 (seconds per iteration of a large dot)")
    p.add_argument("--only", nargs="*", default=None)
    p.add_argument("--relaxed", type=Path, default=None, help="relaxed structure (default: the ideal cut)")
    p.add_argument("--trajectory", type=Path, help="positions XYZ of an MD of this dot (accuracy)")
    p.add_argument("--timestep-fs", type=float, default=2.0)
    p.add_argument("--skip-fs", type=float, default=200.0)
    p.add_argument("--snapshots", type=int, default=10)
    args = p.parse_args(argv)
    data = load()
    if args.part == "report":
        print(report(data))
        return 0
    if args.part == "record":
        from qdphonon.cost import append_measurements  # noqa: PLC0415

        rows = []
        for name, inputs in ((args.current, "current"), (args.previous, "previous")):
            r = next((r for r in data["timing"] if (r["level"], r["size"], r["candidate"]) ==
                      (args.level, args.size, name)), None) if name else None  # fmt: skip
            if r is None or not r.get("s_per_step"):
                continue
            rows.append({"level": r["level"], "n_atoms": r["n_atoms"], "box_A": r["box_A"],
                         "ranks": r["settings"]["ranks"], "threads": r["settings"]["threads"],
                         "s_per_step": r["s_per_step"], "first_step_s": r["first_step_s"], "inputs": inputs,
                         "cp2k_version": f"CP2K {r['cp2k']}", "source": f"bench/bench_cp2k.py {r['candidate']}, "
                         f"{r['measured_at'][:10]}, 2 cores, median of {r['steps']} MD steps"})  # fmt: skip
        append_measurements(rows)
        print(f"recorded {len(rows)} row(s)")
        return 0
    WORK.mkdir(parents=True, exist_ok=True)
    cands = CANDIDATES[args.level]
    names = args.only or list(cands)
    start_wfn = WORK / f"start_{args.level}_n{args.size}.wfn"
    if args.part == "timing":
        for name in names:
            row = timing(args, args.level, cands[name], start_wfn)
            data["timing"] = [r for r in data["timing"] if (r["level"], r["size"], r["candidate"]) !=
                              (row["level"], row["size"], row["candidate"])] + [row]  # fmt: skip
            save(data)
            print(json.dumps({k: row[k] for k in ("candidate", "box_A", "s_per_step", "iterations_per_step",
                                                 "first_step_s", "wall_s")}), flush=True)  # fmt: skip
    else:
        symbols, frames = read_frames(args.trajectory, args.snapshots, args.skip_fs, args.timestep_fs)
        for name in names:
            row = accuracy(args, args.level, cands[name], frames, symbols, start_wfn)
            data["accuracy"] = [r for r in data["accuracy"] if (r["level"], r["size"], r["candidate"]) !=
                                (row["level"], row["size"], row["candidate"])] + [row]  # fmt: skip
            save(data)
            print(name, row["wall_s"], "s, gaps", row["gap_eV"], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
