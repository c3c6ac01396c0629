"""The ``qdphonon`` command: one sub-command a stage, each a thin call into the package.

Heavy modules (pymatgen, matplotlib, pandas) are imported inside the handlers so
that ``qdphonon --help`` and Snakefile parsing stay fast.
"""

from __future__ import annotations

import argparse
import sys


def _floats(text: str) -> list[float]:
    """Parse a comma-separated list of floats, e.g. ``0,4.5,12,30``."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from exc


# --- build (structures) -------------------------------------------------------
def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a charge-neutral CsPbBr3 (core/shell) cuboid QD")
    p.add_argument("--size", nargs=3, type=int, required=True, metavar=("NX", "NY", "NZ"))
    p.add_argument("--shell-layers", type=int, default=0)
    p.add_argument("--shell-metal", default="Ca")
    p.add_argument("--lattice", type=float, default=5.87, help="lattice constant a in Angstrom")
    p.add_argument("--vacuum", type=float, default=10.0, help="vacuum on every side in Angstrom")
    p.add_argument("--out", required=True, help="extended XYZ file; JSON sidecar written next to it")
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from qdphonon import structures

    spec = structures.QuantumDotSpec(
        size=tuple(args.size),
        shell_layers=args.shell_layers,
        shell_metal=args.shell_metal,
        lattice_A=args.lattice,
        vacuum_A=args.vacuum,
    )
    dot = structures.build_quantum_dot(spec)
    structures.write_structure(dot, args.out)
    return 0


# --- cp2k-input ---------------------------------------------------------------
def _add_cp2k_input(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cp2k-input", help="write a validated CP2K input (MD or geometry optimisation)")
    p.add_argument("--structure", required=True, help="extended XYZ written by 'qdphonon build' (or a relaxation)")
    p.add_argument("--level", required=True, choices=["xtb", "pbe"])
    p.add_argument("--run-type", default="MD", choices=["MD", "GEO_OPT"])
    p.add_argument("--temperature", type=float, default=10.0, help="T_md in K")
    p.add_argument("--timestep-fs", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=2022)
    p.add_argument("--thermostat-timecon-fs", type=float, default=100.0)
    p.add_argument("--trajectory-every", type=int, default=1, help="stride of positions/velocities prints")
    p.add_argument("--eps-scf", type=float, default=1e-6)
    p.add_argument("--max-scf", type=int, default=200)
    p.add_argument("--smearing-K", type=float, default=None, help="Fermi-Dirac electronic temperature (explicit)")
    p.add_argument("--geo-opt-max-iter", type=int, default=200)
    p.add_argument("--walltime-s", type=int, default=None, help="CP2K's own WALLTIME")
    p.add_argument("--overrides-json", default="{}", help="CP2K keyword tree merged before validation")
    p.add_argument("--cp2k-command", default="cp2k.psmp", help="CP2K whose --xml definition validates the input")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_run_cp2k_input)


def _run_cp2k_input(args: argparse.Namespace) -> int:
    import json

    from qdphonon import cp2k_input, structures

    dot = structures.read_structure(args.structure)
    try:
        overrides = json.loads(args.overrides_json)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--overrides-json is not JSON: {exc}") from exc
    tree = cp2k_input.cp2k_input_tree(
        dot.symbols,
        dot.positions_A,
        dot.box_A,
        level=args.level,
        run_type=args.run_type,
        md=cp2k_input.MDSettings(
            temperature_K=args.temperature,
            timestep_fs=args.timestep_fs,
            steps=args.steps,
            thermostat_timecon_fs=args.thermostat_timecon_fs,
            trajectory_every_steps=args.trajectory_every,
            seed=args.seed,
        ),
        scf=cp2k_input.SCFSettings(eps_scf=args.eps_scf, max_scf=args.max_scf, smearing_K=args.smearing_K),
        walltime_s=args.walltime_s,
        geo_opt_max_iter=args.geo_opt_max_iter,
        overrides=overrides,
    )
    spec, description = cp2k_input.installed_xmlspec(args.cp2k_command)
    text = cp2k_input.render_input(tree, spec)
    header = f"! qdphonon {args.run_type} input, level {args.level}; validated against {description}\n"
    with open(args.out, "w") as fh:
        fh.write(header + text)
    print(f"validated against {description}", file=sys.stderr)
    return 0


# --- run (engines) ------------------------------------------------------------
def _add_cp2k_launch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cp2k-command", default="cp2k.psmp", help="CP2K executable, found on PATH")
    p.add_argument("--mpi", default=None, help="MPI launcher (mpirun, srun) used when --tasks > 1")
    p.add_argument("--tasks", type=int, default=1, help="MPI ranks (1: a single rank without the launcher)")
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per rank")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run-aimd", help="run (or continue) an AIMD with real CP2K or the synthetic mock engine")
    p.add_argument("--input", required=True, help="the MD input (qdphonon cp2k-input)")
    p.add_argument("--run-dir", required=True, help="directory of the segments and CP2K's files")
    p.add_argument("--engine", required=True, choices=["cp2k", "mock"])
    p.add_argument("--structure", required=True, help="labelled extended XYZ of the MD's start structure")
    p.add_argument("--record", default=None, help="run.json written on completion (default RUN_DIR/run.json)")
    _add_cp2k_launch(p)
    p.add_argument("--runtime-min", type=float, default=None, help="job wall time in minutes (sets CP2K's WALLTIME)")
    p.add_argument("--walltime-margin-min", type=float, default=10.0, help="minutes kept free for CP2K's clean stop")
    p.add_argument("--on-scf-failure", default="drop_step", choices=["drop_step", "keep_flagged", "fail"])
    p.add_argument("--mock-params-json", default="{}", help="mock engine parameters (overrides MOCK_DEFAULTS)")
    p.set_defaults(func=_run_aimd)

    r = sub.add_parser("relax", help="geometry optimisation at the MD's level (mock: pass the structure through)")
    r.add_argument("--structure", required=True)
    r.add_argument("--engine", required=True, choices=["cp2k", "mock"])
    r.add_argument("--level", required=True, choices=["xtb", "pbe"])
    r.add_argument("--workdir", required=True, help="directory of relax.inp/relax.out and CP2K's files")
    r.add_argument("--out", required=True, help="relaxed structure (extended XYZ, labels kept)")
    _add_cp2k_launch(r)
    r.add_argument("--max-iter", type=int, default=200)
    r.add_argument("--smearing-K", type=float, default=None, help="Fermi-Dirac electronic temperature (explicit)")
    r.add_argument("--eps-scf", type=float, default=1e-6)
    r.add_argument("--max-scf", type=int, default=200)
    r.add_argument("--overrides-json", default="{}", help="CP2K keyword tree merged before validation")
    r.set_defaults(func=_run_relax)


def _json_arg(text: str, flag: str) -> dict:
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{flag} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ValueError(f"{flag} must be a JSON object")
    return value


def _run_aimd(args: argparse.Namespace) -> int:
    from qdphonon import engines

    try:
        if args.engine == "mock":
            record = engines.run_mock(args.input, args.run_dir, args.structure,
                                      _json_arg(args.mock_params_json, "--mock-params-json"), record_path=args.record)
        else:
            record = engines.run_cp2k(
                args.input, args.run_dir, cp2k_command=args.cp2k_command, mpi=args.mpi or None, tasks=args.tasks,
                threads=args.threads, runtime_min=args.runtime_min, walltime_margin_min=args.walltime_margin_min,
                on_scf_failure=args.on_scf_failure, record_path=args.record,
            )  # fmt: skip
    except (engines.WalltimeReached, engines.RunInterrupted) as exc:
        print(f"qdphonon run-aimd: {exc}", file=sys.stderr)
        return exc.exit_status
    except engines.EngineError as exc:
        print(f"qdphonon run-aimd: error: {exc}", file=sys.stderr)
        return 1
    print(f"run-aimd: {record['engine']} run complete, {record['total_steps']} MD steps"
          + (" (synthetic)" if record.get("synthetic") else ""), file=sys.stderr)  # fmt: skip
    return 0


def _run_relax(args: argparse.Namespace) -> int:
    from qdphonon import engines

    try:
        summary = engines.relax(
            args.structure, args.workdir, args.out, args.level, engine=args.engine, cp2k_command=args.cp2k_command,
            mpi=args.mpi or None, tasks=args.tasks, threads=args.threads, max_iter=args.max_iter,
            smearing_K=args.smearing_K, eps_scf=args.eps_scf, max_scf=args.max_scf,
            overrides=_json_arg(args.overrides_json, "--overrides-json"),
        )  # fmt: skip
    except engines.EngineError as exc:
        print(f"qdphonon relax: error: {exc}", file=sys.stderr)
        return 1
    print(f"relax: {summary}", file=sys.stderr)
    return 0


# --- parse-cp2k (parsers) -----------------------------------------------------
def _add_parse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse-cp2k", help="band edges (CSV) and trajectories (NPZ) from a CP2K run directory")
    p.add_argument("--run-dir", required=True, help="segments seg000.out, ... and CP2K's md-* files")
    p.add_argument("--out", required=True, help="band-edge CSV: step,time_fs,vbm_eV,cbm_eV,gap_eV,scf_converged")
    p.add_argument("--trajectory-out", default=None, help="NPZ with velocities (A/fs), positions (A), time_fs, step, symbols")
    p.add_argument("--structure", default=None, help="extended XYZ with a region column: per-atom regions in the NPZ")
    p.add_argument("--on-scf-failure", default="drop_step", choices=["drop_step", "keep_flagged", "fail"])
    p.set_defaults(func=_run_parse)


def _run_parse(args: argparse.Namespace) -> int:
    import warnings

    from qdphonon import parsers

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", parsers.ParseWarning)
        result = parsers.parse_run_dir(args.run_dir, on_scf_failure=args.on_scf_failure)
        parsers.write_band_edges_csv(result, args.out)
        if args.trajectory_out:
            parsers.write_trajectory_npz(result, args.trajectory_out, regions=args.structure)
    for w in caught:
        print(f"parse-cp2k: warning: {w.message}", file=sys.stderr)
    e = result.band_edges
    label = " [synthetic (mock engine)]" if result.synthetic else ""
    print(
        f"parse-cp2k: {e.step.size} steps of band edges ({result.n_scf_unconverged} SCF not converged, "
        f"policy {result.scf_policy}), {result.velocities.n_frames} trajectory frames{label}",
        file=sys.stderr,
    )
    return 0


# --- analyze (analysis) -------------------------------------------------------
def _add_analyze(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "analyze",
        help="band edges (and velocities) of one system -> spectral_density.csv, linewidth.json, vdos.csv",
    )
    p.add_argument("--band-edges", nargs="+", required=True, metavar="CSV", help="one CSV per replica")
    p.add_argument("--md-temperature", type=float, required=True, help="T_md of the MD in K")
    p.add_argument("--temperature", type=float, default=300.0, help="T of the reported linewidth in K")
    p.add_argument("--outdir", required=True)
    p.add_argument("--regions", type=_floats, default=[0.0, 4.5, 12.0, 30.0], help="region edges in meV")
    p.add_argument("--discard-fs", type=float, default=0.0, help="equilibration to drop, fs")
    p.add_argument("--velocities", nargs="+", default=None, metavar="NPZ", help="velocity .npz per replica (VDOS)")
    p.add_argument("--structure", default=None, help="structure JSON sidecar of the system")
    p.add_argument("--blocks", type=int, default=4, help="blocks for the error bar of a single replica")
    p.add_argument("--system", default=None, help="system name (default: structure JSON or outdir name)")
    p.set_defaults(func=_run_analyze)

    s = sub.add_parser("summarize", help="per-system linewidth.json + structure JSON -> campaign summary.csv")
    s.add_argument("--linewidths", nargs="+", required=True, metavar="JSON")
    s.add_argument("--structures", nargs="*", default=[], metavar="JSON")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_run_summarize)


def _run_analyze(args: argparse.Namespace) -> int:
    from qdphonon import analysis

    analysis.analyze_system(
        args.band_edges,
        md_temperature_K=args.md_temperature,
        temperature_K=args.temperature,
        region_edges_meV=args.regions,
        discard_fs=args.discard_fs,
        outdir=args.outdir,
        velocities_npz=args.velocities,
        structure_json=args.structure,
        n_blocks=args.blocks,
        system=args.system,
    )
    return 0


def _run_summarize(args: argparse.Namespace) -> int:
    from qdphonon import analysis

    analysis.write_summary(args.linewidths, args.structures, args.out)
    return 0


# --- plot (plots) -------------------------------------------------------------
def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="campaign figures (PNG + PDF) from summary.csv and analysis directories")
    p.add_argument("--summary", required=True)
    p.add_argument("--analysis-dirs", nargs="+", required=True, metavar="DIR")
    p.add_argument("--outdir", required=True)
    p.set_defaults(func=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    from qdphonon import plots

    for path in plots.plot_campaign(args.summary, args.analysis_dirs, args.outdir):
        print(path)
    return 0


# --- check (provenance) -------------------------------------------------------
def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="provenance and completeness of a results tree, per system")
    p.add_argument("--results", default="results")
    p.add_argument("--config", default="config/config.yaml", help="the campaign's config (validated)")
    p.add_argument("--json", action="store_true", help="JSON instead of a tab-separated table")
    p.set_defaults(func=_run_check)


def _run_check(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    from qdphonon import provenance

    config = yaml.safe_load(Path(args.config).read_text())
    schema = Path(__file__).resolve().parents[1] / "schemas" / "config.schema.yaml"
    validate(config, str(schema))
    rows = provenance.campaign_provenance(args.results, config)
    print(json.dumps(rows, indent=1, sort_keys=True) if args.json else provenance.format_table(rows))
    return 0 if all(r["complete"] for r in rows) else 3


def _not_ready(name: str) -> int:
    print(f"qdphonon {name}: not implemented yet", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="qdphonon", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_build, _add_cp2k_input, _add_run, _add_parse, _add_analyze, _add_plot, _add_check):
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qdphonon`` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"qdphonon {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
