"""CP2K's time per harmonic-route single point in the shipped real campaigns, as the cost table
``qdphonon cost`` prices the harmonic route with.

    python validation/single_point_costs.py      # rewrites workflow/qdphonon/data/cp2k_single_point_costs.csv

For each archive of :data:`ARCHIVES` (real CP2K through the workflow; each README says how and on
what machine), every single point's main output is read with the package's parsers: CP2K's own total
time (the timing report), the MPI ranks and threads, the CP2K version. One row per archive: the median
over its single points (robust to the few that ran while the shared machine was busiest), the range,
the count. ``tests/test_single_point_costs.py`` re-makes the table from the archives.
"""

from __future__ import annotations

import statistics
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "workflow"))

from qdphonon.cp2k.readback import read_md_input  # noqa: E402
from qdphonon.parsers.output_header import read_output_header  # noqa: E402
from qdphonon.parsers.single_point import read_single_point  # noqa: E402
from qdphonon.harmonic.cost import COLUMNS, DATA_PATH  # noqa: E402

ARCHIVES = ("pbe_n1_harmonic/pbe_n1_harmonic.tar.xz", "pbe_n2/pbe_n2.tar.xz")
"""Archives under validation/ holding a harmonic route's single points."""


def archive_row(archive: Path) -> dict:
    """The cost row of one archive's single points."""
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(archive) as tar:
        tar.extractall(tmp, members=[m for m in tar.getmembers() if "/sp/" in m.name],
                       **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))  # 3.11.0-3.11.3 have no filter
        outputs = sorted(Path(tmp).glob("harmonic/*/sp/*/sp.out"))
        if not outputs:
            raise ValueError(f"{archive}: no single points")
        walls, headers, levels = [], [], set()
        for out in outputs:
            levels.add(read_md_input(out.parent / "sp.inp").level)
            sp = read_single_point(out.parent)
            if sp.synthetic or sp.wall_s is None:
                raise ValueError(f"{out}: synthetic, or no CP2K timing report")
            walls.append(sp.wall_s)
            headers.append(read_output_header(out))
        symbols = len(sp.symbols)
    layouts = {(h.mpi_ranks, h.threads_per_rank, h.cp2k_version) for h in headers}
    if len(layouts) != 1:
        raise ValueError(f"{archive}: single points ran on different layouts or versions: {sorted(layouts)}")
    ranks, threads, version = layouts.pop()
    if len(levels) != 1:
        raise ValueError(f"{archive}: single points of several levels: {sorted(levels)}")
    level = levels.pop()
    return {"level": level, "n_atoms": symbols, "ranks": ranks, "threads": threads,
            "s_per_single_point": round(statistics.median(walls), 3), "n_single_points": len(walls),
            "min_s": round(min(walls), 3), "max_s": round(max(walls), 3), "cp2k_version": f"CP2K {version}",
            "source": "validation/" + archive.parent.name}  # fmt: skip


def table(validation_dir: Path = HERE, archives: tuple[str, ...] = ARCHIVES) -> list[dict]:
    return [archive_row(validation_dir / name) for name in archives]


def main() -> int:
    import csv

    rows = table()
    with open(DATA_PATH, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    print(f"{DATA_PATH}: {len(rows)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
