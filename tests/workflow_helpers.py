"""Run the qdphonon Snakefile in a scratch directory (shared by the workflow tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Sequence

import yaml

REPO = Path(__file__).resolve().parents[1]


def write_config(workdir: Path, config: dict | Path) -> Path:
    """Write a config into ``workdir/config.yaml`` (a dict, or a copy of a config file)."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "config.yaml"
    if isinstance(config, Path):
        path.write_text(config.read_text())
    else:
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def snakemake(workdir: Path, *args: str, timeout_s: float = 900) -> subprocess.CompletedProcess:
    """``snakemake --snakefile REPO/Snakefile --directory workdir --configfile workdir/config.yaml ARGS``."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a (dry) run; {} for nothing to be done."""
    counts: dict[str, int] = {}
    in_table = False
    for line in result.stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts or parts[0] == "total":
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    return counts


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def files_under(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()}
