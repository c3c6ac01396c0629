"""Make the DERIVED fixtures of this directory from real CP2K 2023.1 output and CP2K's own print statements.

No real output of these formats was found in public repositories, so each is a real CP2K 2023.1 file
(``../cp2k-2023.1/xtb_cs4pbbr6_20steps/run.tar.xz``) rewritten the way the cited CP2K source prints it.
They are labelled ``derived`` in their names and in README.md; the numbers in them are the real 2023.1 ones.

- ``v2026.2-derived_md_xtb.out.xz`` + ``v2026.2-derived_md_xtb-mo-1.MOLog.xz``: the main output with the
  per-step banner of CP2K 2026.2 (cp2k/cp2k commit cdd82092686041197de37ea38244747aa122db0d, #5306,
  ``src/motion/md_run.F``: ``WRITE (md_step_line, FMT="(A,I12,A,I0)") "MD STEP: ", istep, " / ", nsteps``,
  then a dash line ``(/,T2,A)``, the step line ``(T2,A)`` and a dash line ``(T2,A)``) inserted where the MD
  loop begins each step (after the MD_INI block, then after each step's summary), and the version string
  changed to 2026.2. The MOLog is copied unchanged: ``src/qs_mo_io.F`` prints the same ``MO|`` rows in
  2023.1, 2026.1 and 2026.2.
- ``v8.1-derived_md-mo-1.MOLog.xz``: the MOLog rewritten in the format of CP2K before 8.2
  (``src/qs_mo_io.F`` at tag v8.1.0, ``write_mo_set_to_output_unit``: header ``(/,/,T2,A)`` "MO EIGENVALUES
  AND MO OCCUPATION NUMBERS", ``(/,A)`` "# MO index ...", rows ``(T2,I9,2X,F28.6,1X,F24.6)``, ``(A,T42,F24.6,/)``
  "# Sum", ``(A,T17,F24.6,/)`` "  Fermi energy:"), eigenvalues in Hartree.

Run from the repository root: ``python tests/data/cp2k-versions/derive_fixtures.py``.
"""

from __future__ import annotations

import lzma
import re
import tarfile
from pathlib import Path

HERE = Path(__file__).parent
SOURCE = HERE.parent / "cp2k-2023.1" / "xtb_cs4pbbr6_20steps" / "run.tar.xz"


def _member(name: str) -> str:
    with tarfile.open(SOURCE) as tar:
        m = next(m for m in tar.getmembers() if m.name.endswith(name))
        return tar.extractfile(m).read().decode()


def md_step_banner(istep: int, nsteps: int) -> list[str]:
    """The lines md_run.F (CP2K 2026.2) prints before MD step ``istep``."""
    text = f"MD STEP: {istep:12d} / {nsteps}"
    return ["", " " + "-" * len(text), " " + text, " " + "-" * len(text)]


def with_2026_banner(out: str) -> str:
    lines = out.split("\n")
    nsteps = int(re.search(r"MD_PAR\| Number of time steps\s+(\d+)", out).group(1))
    result: list[str] = []
    istep = 0
    in_ini = False
    for k, line in enumerate(lines):
        line = line.replace("CP2K version 2023.1", "CP2K version 2026.2")
        result.append(line)
        nxt = lines[k + 1] if k + 1 < len(lines) else ""
        if line.lstrip().startswith("MD_INI|"):
            in_ini = True
        ends_ini = in_ini and not nxt.lstrip().startswith("MD_INI|")
        ends_step = line.lstrip().startswith("MD| Estimated peak process memory")
        if (ends_ini or ends_step) and istep < nsteps:
            in_ini = False
            istep += 1
            result.extend(md_step_banner(istep, nsteps))
    return "\n".join(result)


def pre82_molog(molog: str) -> str:
    blocks = []
    for blk in re.split(r"\n(?= MO\| EIGENVALUES AND OCCUPATION NUMBERS)", molog):
        rows = re.findall(r"^ MO\|\s+(\d+)\s+(\S+)\s+\S+\s+(\S+)\s*$", blk, re.M)
        fermi = re.search(r"E\(Fermi\):\s+(\S+) a\.u\.", blk)
        if not rows:
            continue
        out = ["", "", " MO EIGENVALUES AND MO OCCUPATION NUMBERS", "",
               "# MO index          MO eigenvalue [a.u.]            MO occupation"]  # fmt: skip
        out += [f" {int(i):9d}  {float(e):28.6f} {float(o):24.6f}" for i, e, o in rows]
        total = float(re.search(r"MO\| Sum:\s+(\S+)", blk).group(1))
        out += [f"{'# Sum':<41}{total:24.6f}", ""]
        out += [f"{'  Fermi energy:':<16}{float(fermi.group(1)) if fermi else 0.0:24.6f}", ""]
        blocks.append("\n".join(out))
    return "\n".join(blocks) + "\n"


def main() -> None:
    out, molog = _member("seg000.out"), _member("md-mo-1.MOLog")
    (HERE / "v2026.2-derived_md_xtb.out.xz").write_bytes(lzma.compress(with_2026_banner(out).encode()))
    (HERE / "v2026.2-derived_md_xtb-mo-1.MOLog.xz").write_bytes(lzma.compress(molog.encode()))
    (HERE / "v8.1-derived_md-mo-1.MOLog.xz").write_bytes(lzma.compress(pre82_molog(molog).encode()))


if __name__ == "__main__":
    main()
