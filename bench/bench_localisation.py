"""Cost of the band-edge localisation print (&PDOS with &LDOS region lists) relative to the MD.

Runs a short GFN1-xTB MD of the relaxed 2x2x2 dot (64 atoms, tests/data) twice with Debian's CP2K
2023.1, without and with the print at every step, and reads CP2K's own timing report: the time of
``calculate_projected_dos`` per call over that of ``qs_forces`` per step (a ratio, so a loaded
machine matters less than for wall times). The cost at a stride K is that ratio / K.

    python bench/bench_localisation.py [workdir]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
from qdphonon.cp2k.readback import render_tree
from qdphonon.cp2k.xmlspec import bundled_xmlspec
from qdphonon.structures.io import read_structure

STRUCTURE = Path(__file__).resolve().parents[1] / "tests/data/cp2k-2023.1/structures/cspbbr3_2x2x2_xtb_relaxed.xyz"


def routine(out: str, name: str) -> tuple[int, float]:
    """(calls, total time in s) of a routine in CP2K's timing report (the last column, max over ranks)."""
    m = re.search(rf"^ {name}\s+(\d+)\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)\s*$", out, re.MULTILINE)
    return int(m.group(1)), float(m.group(2))


def main(workdir: str = "bench_localisation_runs") -> None:
    dot = read_structure(STRUCTURE)
    regions = ["surface" if s == "Cs" else "core" for s in dot.symbols]
    res = {}
    for name, every in (("plain", None), ("pdos", 1)):
        d = Path(workdir) / name
        d.mkdir(parents=True, exist_ok=True)
        tree = cp2k_input_tree(dot.symbols, dot.positions_A, dot.box_A, level="xtb",
                               md=MDSettings(steps=10, trajectory_every_steps=10, trajectory_format="xyz"),
                               scf=SCFSettings(), regions=regions, localisation_every_steps=every)  # fmt: skip
        (d / "md.inp").write_text(render_tree(tree, bundled_xmlspec()))
        subprocess.run(["cp2k.psmp", "-i", "md.inp", "-o", "md.out"], cwd=d, check=True)
        res[name] = (d / "md.out").read_text()
    n_f, t_f = routine(res["pdos"], "qs_forces")
    n_p, t_p = routine(res["pdos"], "calculate_projected_dos")
    ratio = (t_p / n_p) / (t_f / n_f)
    print(f"qs_forces {t_f / n_f:.2f} s/step, calculate_projected_dos {t_p / n_p:.2f} s/call: "
          f"{100 * ratio:.1f} % of a step per print; every 50 steps {100 * ratio / 50:.2f} %")  # fmt: skip


if __name__ == "__main__":
    main(*sys.argv[1:])
