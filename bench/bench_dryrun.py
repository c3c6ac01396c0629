"""Dry-run cost of the qdphonon Snakefile vs a bare Snakefile with a DAG of the same shape.

Builds a campaign of N systems (default 200 cuboids, 2 replicas each), times ``snakemake -n``
on the real workflow and on a bare Snakefile with the same rules, wildcards and file patterns
but no imports or config validation, in one run; prints the ratio and appends it to
bench/RESULTS.md. Target (issue 4): ratio <= 1.5.

    python bench/bench_dryrun.py [--systems 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

BARE = '''
configfile: "config.yaml"
SYSTEMS = ["cspbbr3_%dx%dx%d" % tuple(s["size"]) for s in config["systems"]]
REPS = ["r0", "r1"]
FIGS = ("spectral_densities", "size_dependence", "core_shell_comparison", "phonon_dos")
rule all:
    input: "results/summary.csv", expand("results/figures/{n}.{e}", n=FIGS, e=("png", "pdf"))
rule build_structure:
    output: "results/structures/{system}.xyz", "results/structures/{system}.json"
    shell: "touch {output}"
rule relax_structure:
    input: "results/structures/{system}.xyz"
    output: "results/relaxed/{system}.xyz"
    shell: "touch {output}"
rule write_cp2k_input:
    input: "results/relaxed/{system}.xyz"
    output: "results/cp2k/{system}/{replica}/md.inp"
    shell: "touch {output}"
rule run_aimd:
    input: "results/cp2k/{system}/{replica}/md.inp", "results/relaxed/{system}.xyz"
    output: "results/aimd/{system}/{replica}/run.json"
    shell: "touch {output}"
rule parse_band_edges:
    input: "results/aimd/{system}/{replica}/run.json", "results/relaxed/{system}.xyz"
    output: "results/band_edges/{system}/{replica}.csv", "results/trajectories/{system}/{replica}.npz"
    shell: "touch {output}"
rule analyze_system:
    input: expand("results/band_edges/{{system}}/{r}.csv", r=REPS), expand("results/trajectories/{{system}}/{r}.npz", r=REPS), "results/structures/{system}.json"
    output: "results/analysis/{system}/spectral_density.csv", "results/analysis/{system}/linewidth.json", "results/analysis/{system}/vdos.csv"
    shell: "touch {output}"
rule summarize_campaign:
    input: expand("results/analysis/{s}/linewidth.json", s=SYSTEMS), expand("results/structures/{s}.json", s=SYSTEMS)
    output: "results/summary.csv"
    shell: "touch {output}"
rule plot_figures:
    input: "results/summary.csv"
    output: expand("results/figures/{n}.{e}", n=FIGS, e=("png", "pdf"))
    shell: "touch {output}"
'''


def campaign(n_systems: int) -> dict:
    sizes = [[1 + i % 9, 1 + (i // 9) % 9, 1 + i // 81] for i in range(n_systems)]
    return {"systems": [{"size": s} for s in sizes], "md": {"replicas": 2, "steps": 4000}}


def time_dry_run(snakefile: Path, workdir: Path, configfile: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--quiet", "--snakefile", str(snakefile),
                              "--directory", str(workdir), "--configfile", str(configfile)],
                             capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if res.returncode != 0:
            raise SystemExit(res.stderr[-2000:])
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--systems", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg = tmp / "config.yaml"
        cfg.write_text(yaml.safe_dump(campaign(args.systems)))
        bare_dir = tmp / "bare"
        bare_dir.mkdir()
        (bare_dir / "Snakefile").write_text(BARE)
        (bare_dir / "config.yaml").write_text(cfg.read_text())
        real_dir = tmp / "real"
        real_dir.mkdir()
        t_real = time_dry_run(REPO / "Snakefile", real_dir, cfg, args.repeats)
        t_bare = time_dry_run(bare_dir / "Snakefile", bare_dir, bare_dir / "config.yaml", args.repeats)
    ratio = t_real / t_bare
    jobs = args.systems * 9 + 3  # build, relax, analyze + 2 replicas x (input, aimd, parse)
    line = (f"| {datetime.date.today()} | {platform.machine()}, {platform.python_version()} | {args.systems} systems "
            f"(~{jobs} jobs) | qdphonon {t_real:.2f} s | bare {t_bare:.2f} s | ratio {ratio:.2f} (target <= 1.5) |")
    print(line)
    results = REPO / "bench" / "RESULTS.md"
    with results.open("a") as fh:
        fh.write(f"\n### Dry run (`bench/bench_dryrun.py`)\n\n{line}\n")


if __name__ == "__main__":
    main()
