"""Run the qdphonon Snakefile in a scratch directory (shared by the workflow tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    """``snakemake --snakefile REPO/Snakefile --directory workdir --configfile workdir/config.yaml ARGS``.

    Returns the CompletedProcess whatever its exit status: assert on ``returncode`` or pass it
    to :func:`check_ok`, :func:`planned_jobs` or :func:`assert_nothing_to_be_done`, which check
    it first. Snakemake 9 prints some errors on stdout, so read both streams."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, check=False)


NOTHING_TO_BE_DONE = "Nothing to be done"
"""What Snakemake prints when every requested file is present and up to date."""


def check_ok(result: subprocess.CompletedProcess, what: str = "command") -> subprocess.CompletedProcess:
    """``result`` if its exit status is 0; otherwise AssertionError with the command and its stderr."""
    if result.returncode != 0:
        cmd = " ".join(map(str, result.args)) if isinstance(result.args, (list, tuple)) else str(result.args)
        raise AssertionError(
            f"{what} failed with exit status {result.returncode}: {cmd}\n"
            f"--- stderr (last 6000 characters) ---\n{(result.stderr or '')[-6000:]}\n"
            f"--- stdout (last 2000 characters) ---\n{(result.stdout or '')[-2000:]}"
        )
    return result


def planned_jobs(result: subprocess.CompletedProcess) -> dict[str, int]:
    """Rule -> job count from the 'Job stats' table of a successful (dry) run.

    Checks the exit status first (AssertionError with stderr on failure). Returns ``{}`` only
    when Snakemake said "Nothing to be done"; output with neither a job table nor that message
    (a crash, an unexpected format) is an AssertionError, never an empty plan. The table's
    rows must add up to its ``total`` row.
    """
    check_ok(result, "snakemake")
    text = (result.stdout or "") + "\n" + (result.stderr or "")
    counts: dict[str, int] = {}
    total = None
    in_table = False
    for line in text.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if not parts:
                break
            if parts[0] == "total":
                total = int(parts[1])
                break
            if len(parts) == 2 and parts[1].isdigit():
                counts[parts[0]] = int(parts[1])
    if not counts:
        if NOTHING_TO_BE_DONE not in text:
            raise AssertionError(f"neither a 'Job stats' table nor {NOTHING_TO_BE_DONE!r} in the output:\n{text[-4000:]}")
        return {}
    if total is not None and total != sum(counts.values()):
        raise AssertionError(f"job table rows {counts} do not add up to its total {total}")
    return counts


def assert_nothing_to_be_done(result: subprocess.CompletedProcess) -> None:
    """The (dry) run succeeded, said "Nothing to be done", and planned no job."""
    jobs = planned_jobs(result)  # checks the exit status
    assert jobs == {}, f"expected nothing to be done, but it plans {jobs}"
    assert NOTHING_TO_BE_DONE in result.stdout + result.stderr, result.stdout[-3000:] + result.stderr[-3000:]


def default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def files_under(root: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob(pattern)) if p.is_file()}
