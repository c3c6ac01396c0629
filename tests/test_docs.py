"""The README a newcomer reads: one screen, the two quick-start commands, the citation, and numbers
that are traceable (costs to bench/RESULTS.md, sizes to the schema's lattice constant); the rest
lives in docs/running.md; no retired option name survives in the docs."""

from __future__ import annotations

import re
from pathlib import Path

from qdphonon import settings

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
RUNNING = (REPO / "docs/running.md").read_text(encoding="utf-8")
BENCH = (REPO / "bench/RESULTS.md").read_text(encoding="utf-8")
QUICK_START = ("python3 -m venv .venv && . .venv/bin/activate && pip install -e . && snakemake --cores 2",
               "bash tests/run.sh")  # fmt: skip


def test_readme_fits_one_screen_with_the_quick_start_and_the_citation():
    assert len(README.splitlines()) <= 60
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in block.strip().splitlines()] == list(QUICK_START)
    assert "10.1038/s41467-022-30016-0" in README and "13**, 2587 (2022)" in README
    assert "results/summary.csv" in README and "docs/running.md" in README
    for level in ("mock", "xtb", "pbe"):
        assert f"**{level}**" in README


def test_running_page_holds_what_left_the_readme():
    for topic in ("SLURM", "WALLTIME", "Rerun policy", "Provenance", "Conda", "What a campaign costs",
                  "cost-table:start", "Outputs"):  # fmt: skip
        assert topic in RUNNING, topic


def test_every_cost_number_in_the_docs_is_in_bench_results():
    """Seconds per MD step quoted in the README or docs/running.md are measured in bench/RESULTS.md."""
    for text in (README, RUNNING.split("<!-- cost-table:start -->")[0]):
        quoted = re.findall(r"(\d+(?:\.\d+)?) s per (?:MD )?step", text)
        quoted += re.findall(r"(\d+(?:\.\d+)?) s for \d+", text)
        assert quoted
        table_cells = set(re.findall(r"\|\s*(\d+(?:\.\d+)?)\s*\|", BENCH)) | set(re.findall(r"(\d+\.\d+) s", BENCH))
        missing = [q for q in quoted if q not in table_cells]
        assert not missing, f"numbers not in bench/RESULTS.md: {missing}"


def test_sizes_in_the_readme_are_the_models_edges():
    a_nm = settings.default("structure.lattice_A") / 10.0
    lo, hi = re.search(r"cubes of 3–7 octahedra \((\d\.\d\d)–(\d\.\d\d) nm\)", README).groups()
    assert (float(lo), float(hi)) == (round(3 * a_nm, 2), round(7 * a_nm, 2))
    cs = re.search(r"(\d\.\d\d) nm CsPbBr3/CsCaBr3 core/shell", README).group(1)
    assert float(cs) == round(6 * a_nm, 2)


def test_no_retired_option_name_in_the_docs():
    docs = [README, RUNNING, *(p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md")),
            (REPO / "config/README.md").read_text(encoding="utf-8")]  # fmt: skip
    for text in docs:
        text = re.sub(r"Old spellings \(.*?\) still parse, hidden", "", text, flags=re.S)  # the one list of aliases
        for old in ("--discard-fs", "--regions ", "--geo-opt-max-iter", "--mock-params-json", "--walltime-s",
                    "status --config ", "check --config ", "see below"):  # fmt: skip
            assert old not in text, old


def test_run_sh_says_what_it_installs_before_it_does():
    script = (REPO / "tests/run.sh").read_text()
    announce = script.index("will install Debian packages")
    assert announce < script.index("apt-get install") and "sudo" in script[:announce + 200]
    assert script.index("will install qdphonon") < script.index("-m pip install")
