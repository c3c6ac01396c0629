"""The real (non-synthetic) results this repository ships, as one small table for the size figure.

    python validation/real_points.py            # rewrites workflow/qdphonon/data/real_points.csv

Reads ``summary.csv`` from each archive of :data:`ARCHIVES` (made by real CP2K through the workflow;
each archive's README says how) and keeps, per row, the columns the size figure draws and the ones that
say what the number is: route, level, the 68 % interval where the route has one (the MD route's
replicas; the harmonic route has no sampling error and no interval). The package ships the table
(``qdphonon/data/real_points.csv``), so an installed workflow draws these points beside a campaign's
own; ``tests/test_real_points.py`` re-makes it from the archives.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "workflow" / "qdphonon" / "data" / "real_points.csv"
ARCHIVES = ("pbe_n1/pbe_n1.tar.xz", "pbe_n1_harmonic/pbe_n1_harmonic.tar.xz", "pbe_n2/pbe_n2.tar.xz")
"""Archives under validation/ whose summary rows are real results."""

COLUMNS = ("system", "formula", "n_atoms", "edge_nm", "shell_layers", "level", "route", "report_temperature_K",
           "fwhm_meV", "fwhm_lo_meV", "fwhm_hi_meV", "fwhm_quantum_meV", "lambda_meV", "lambda_lo_meV",
           "lambda_hi_meV", "confidence_level", "n_replicas", "md_temperature_K")  # fmt: skip


def summary_of(archive: Path) -> pd.DataFrame:
    with tarfile.open(archive) as tar:
        return pd.read_csv(io.BytesIO(tar.extractfile("summary.csv").read()))


def real_points(validation_dir: Path = HERE, archives: tuple[str, ...] = ARCHIVES) -> pd.DataFrame:
    """One row per system and route of the shipped real archives; ValueError if any row is synthetic."""
    rows = []
    for name in archives:
        df = summary_of(validation_dir / name)
        if df["synthetic"].astype(str).str.lower().eq("true").any():
            raise ValueError(f"{name}: synthetic rows: this table holds real results only")
        df = df.reindex(columns=list(COLUMNS))
        df["source"] = "validation/" + name.split("/")[0]
        rows.append(df)
    return pd.concat(rows, ignore_index=True)


def main() -> int:
    table = real_points()
    table.to_csv(OUT, index=False, float_format="%.8g")
    print(f"{OUT}: {len(table)} rows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
