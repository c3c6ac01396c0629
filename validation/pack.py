"""Pack what a finished campaign of one system made into a small, shippable archive.

    python validation/pack.py RESULTS_DIR SYSTEM OUT.tar.xz

Takes what either route made. The MD route: the band edges, the analysis tables and
``linewidth.json``, the figures, the CP2K inputs, the relaxation and run records, the energies file
(conserved quantity) and the structures. The positions and velocities (``trajectories/SYSTEM/*.npz``,
which the workflow deletes after the analysis: re-make them with ``qdphonon parse-cp2k
--trajectory-out``) go in when present, so the internal kinetic temperature can be re-measured.
The harmonic route: ``analysis_harmonic/SYSTEM/`` (with ``route_comparison.csv`` when there), the
tight relaxation (input, output, records, its path), the relaxed structure, the batch records and,
per single point, what ``qdphonon harmonic-analyze`` re-reads: the input, the main output, the forces
and the MOLog. Wavefunctions, restart files and the CP2K XYZ trajectories of the MD are left out.

CP2K prints the directory it ran in; text members have the absolute path of the campaign directory
(the parent of RESULTS_DIR, followed through symbolic links) replaced by ``.``, so the archive names
no machine's paths; ``manifest.json`` lists the members rewritten so, and the SHA-256 of every
member as packed, the CP2K version and the time packed. Written as an xz-compressed tarball.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import sys
import tarfile
import time
from pathlib import Path

TEXT_SUFFIXES = {".csv", ".json", ".inp", ".out", ".xyz", ".MOLog", ".ener", ".restart", ".log"}
"""Members whose text is searched for the campaign directory's absolute path."""

_CP2K_DIR_LINE = re.compile(r"^(?P<head>.*PROGRAM (?:STARTED|STOPPED) IN )(?P<path>\S+)$")


def members(results: Path, system: str) -> list[Path]:
    """The files to ship, relative to ``results``."""
    patterns = [
        f"band_edges/{system}/*", f"analysis/{system}/*", "summary.csv", "summary.json", "figures/*.png",
        f"cp2k/{system}/*/md.inp", f"relax/{system}/relax.inp", f"relax/{system}/relax.json",
        f"aimd/{system}/*/run.json", f"aimd/{system}/*/segments.json", f"aimd/{system}/*/*-1.ener",
        f"aimd/{system}/*/seg*.inp", f"structures/{system}.*", f"relaxed/{system}.xyz",
        f"trajectories/{system}/*.npz",
        f"analysis_harmonic/{system}/*", f"harmonic/{system}/relaxed.xyz", f"harmonic/{system}/batches/*.json",
        f"harmonic/{system}/relax/relax.inp", f"harmonic/{system}/relax/relax.out",
        f"harmonic/{system}/relax/relax.json", f"harmonic/{system}/relax/relax-state.json",
        f"harmonic/{system}/relax/relax-pos-1.xyz", f"harmonic/{system}/sp/*/sp.inp",
        f"harmonic/{system}/sp/*/sp.out", f"harmonic/{system}/sp/*/sp-forces-1_0.xyz",
        f"harmonic/{system}/sp/*/sp-mo-1_0.MOLog",
    ]  # fmt: skip
    found = sorted({p.relative_to(results) for pat in patterns for p in results.glob(pat) if p.is_file()})
    if not any(str(p).startswith(("band_edges/", f"harmonic/{system}/sp/")) for p in found):
        raise SystemExit(f"{results}: no band edges nor harmonic single points of {system}")
    return found


def campaign_dir(results: Path, member: Path) -> Path:
    """The directory the campaign ran in, as the member's real path names it (the parent of its results)."""
    real = (results / member).resolve()
    return real.parents[len(member.parts)]


def portable_text(text: str, directory: Path) -> str:
    """``text`` with the absolute path ``directory`` replaced by ``.``: plain occurrences, and CP2K's
    banner lines (``PROGRAM STARTED IN``), which wrap a long directory over indented lines; the
    shortened path is wrapped again at the same width."""
    root = str(directory).rstrip("/")
    lines, out, i = text.split("\n"), [], 0
    while i < len(lines):
        m = _CP2K_DIR_LINE.match(lines[i])
        if not m:
            out.append(lines[i])
            i += 1
            continue
        head, path, width = m.group("head"), m.group("path"), len(lines[i])
        i += 1
        while i < len(lines) and lines[i].startswith(" " * len(head)) and lines[i].strip() and " " not in lines[i].strip():
            path += lines[i].strip()
            i += 1
        if path == root or path.startswith(root + "/"):
            path = "." + path[len(root):]
        chunk = max(width - len(head), 1)
        pieces = [path[k:k + chunk] for k in range(0, len(path), chunk)] or [""]
        out.append(head + pieces[0])
        out.extend(" " * len(head) + p for p in pieces[1:])
    text = "\n".join(out)
    return text.replace(root + "/", "./").replace(root, ".")


def packed_bytes(results: Path, member: Path) -> tuple[bytes, bool]:
    """The member's bytes as shipped, and whether the campaign directory was replaced in them."""
    data = (results / member).read_bytes()
    if member.suffix not in TEXT_SUFFIXES:
        return data, False
    directory = campaign_dir(results, member)
    text = data.decode("utf-8", errors="surrogateescape")
    new = portable_text(text, directory)
    if str(directory) in new:
        raise SystemExit(f"{results / member}: still names {directory} after rewriting")
    return new.encode("utf-8", errors="surrogateescape"), new != text


def _record(results: Path, system: str) -> dict:
    """The first run record (MD) or the harmonic relaxation's: engine and CP2K version."""
    for pattern in (f"aimd/{system}/*/run.json", f"harmonic/{system}/relax/relax.json"):
        found = sorted(results.glob(pattern))
        if found:
            return json.loads(found[0].read_text())
    return {}


def pack(results: Path, system: str, out: Path) -> dict:
    files = members(results, system)
    record = _record(results, system)
    payload = {str(p): packed_bytes(results, p) for p in files}
    manifest = {
        "system": system, "packed_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cp2k_version": record.get("cp2k_version"), "engine": record.get("engine"),
        "files": {name: hashlib.sha256(data).hexdigest() for name, (data, _) in payload.items()},
        "campaign_directory_replaced_by_dot": sorted(name for name, (_, changed) in payload.items() if changed),
    }  # fmt: skip
    now = int(time.time())
    with tarfile.open(out, "w:xz", preset=9) as tar:
        for name, (data, _) in payload.items():
            _add(tar, name, data, int((results / name).stat().st_mtime))
        _add(tar, "manifest.json", (json.dumps(manifest, indent=1) + "\n").encode(), now)
    return manifest


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), mtime, 0o644
    tar.addfile(info, io.BytesIO(data))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    m = pack(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
    print(f"{sys.argv[3]}: {len(m['files'])} files, {Path(sys.argv[3]).stat().st_size / 1024:.0f} KiB")
