"""The Snakefile lints clean, is snakefmt-formatted, and parses without heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_snakemake_lint_is_clean():
    res = subprocess.run([sys.executable, "-m", "snakemake", "--lint"], cwd=REPO, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


def test_rules_are_snakefmt_formatted():
    files = ["Snakefile", *sorted(str(p.relative_to(REPO)) for p in (REPO / "workflow/rules").glob("*.smk"))]
    res = subprocess.run(["snakefmt", "--check", *files], cwd=REPO, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def test_parse_time_imports_stay_light():
    """Dry runs stay fast: the Snakefile's imports must not pull pymatgen, matplotlib or pandas."""
    code = (
        "import sys; sys.path.insert(0, 'workflow');"
        "import qdphonon.config, qdphonon.units;"
        "heavy = [m for m in ('pymatgen', 'matplotlib', 'pandas', 'scipy', 'ase') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert res.stdout.strip() == ""
