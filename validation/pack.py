"""Pack what a finished campaign of one system made into a small, shippable archive.

    python validation/pack.py RESULTS_DIR SYSTEM OUT.tar.xz

Takes the band edges, the analysis tables and ``linewidth.json``, the figures, the CP2K inputs,
the relaxation and run records, the energies file (conserved quantity) and the structures, and
writes them with a ``manifest.json`` (SHA-256 of every member, the CP2K version, the time
packed) into an xz-compressed tarball. The positions and velocities (``trajectories/SYSTEM/*.npz``,
which the workflow deletes after the analysis: re-make them with ``qdphonon parse-cp2k
--trajectory-out``) go in when present, so the internal kinetic temperature can be re-measured;
wavefunctions and the CP2K XYZ trajectories are left out.
"""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import time
from pathlib import Path


def members(results: Path, system: str) -> list[Path]:
    """The files to ship, relative to ``results``."""
    patterns = [
        f"band_edges/{system}/*", f"analysis/{system}/*", "summary.csv", "summary.json", "figures/*.png",
        f"cp2k/{system}/*/md.inp", f"relax/{system}/relax.inp", f"relax/{system}/relax.json",
        f"aimd/{system}/*/run.json", f"aimd/{system}/*/segments.json", f"aimd/{system}/*/*-1.ener",
        f"aimd/{system}/*/seg*.inp", f"structures/{system}.*", f"relaxed/{system}.xyz",
        f"trajectories/{system}/*.npz",
    ]  # fmt: skip
    found = sorted({p.relative_to(results) for pat in patterns for p in results.glob(pat) if p.is_file()})
    if not any(str(p).startswith("band_edges/") for p in found):
        raise SystemExit(f"{results}: no band edges of {system}")
    return found


def pack(results: Path, system: str, out: Path) -> dict:
    files = members(results, system)
    runs = sorted(results.glob(f"aimd/{system}/*/run.json"))
    record = json.loads(runs[0].read_text()) if runs else {}
    manifest = {
        "system": system, "packed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cp2k_version": record.get("cp2k_version"), "engine": record.get("engine"),
        "files": {str(p): hashlib.sha256((results / p).read_bytes()).hexdigest() for p in files},
    }  # fmt: skip
    with tarfile.open(out, "w:xz", preset=9) as tar:
        for p in files:
            tar.add(results / p, arcname=str(p))
        data = (json.dumps(manifest, indent=1) + "\n").encode()
        info = tarfile.TarInfo("manifest.json")
        info.size, info.mtime = len(data), int(time.time())
        tar.addfile(info, io.BytesIO(data))
    return manifest


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    m = pack(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
    print(f"{sys.argv[3]}: {len(m['files'])} files, {Path(sys.argv[3]).stat().st_size / 1024:.0f} KiB")
