"""The ``qdphonon`` command: one sub-command a stage, each a thin call into the package.

Heavy modules (pymatgen, matplotlib, pandas) are imported inside the handlers so
that ``qdphonon --help`` and Snakefile parsing stay fast.
"""

from __future__ import annotations

import argparse
import sys

from qdphonon import settings
from qdphonon.cli.campaign import add_check_parser, add_status_parser
from qdphonon.cli.harmonic import add_harmonic_parsers
from qdphonon.cli.settings import add_settings_option, apply_settings
from qdphonon.cli.settings import alias as _alias, opt as _opt
from qdphonon.cli.types import floats as _floats, json_object as _json_object
from qdphonon.cli.reevaluate import add_reevaluate_parser
from qdphonon.cli.analysis import add_analysis_parsers
from qdphonon.cli.cost import add_cost_parser
from qdphonon.engines.launcher import resolve_launcher
from qdphonon.cli.claims import add_claims_parsers
from qdphonon.cli.anharmonicity import add_anharmonicity_parsers


# --- build (structures) -------------------------------------------------------
def _add_build(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("build", help="build a charge-neutral CsPbBr3 (core/shell) cuboid QD")
    _opt(p, "--size", "systems[].size", int, nargs=3, required=True, metavar=("NX", "NY", "NZ"))
    _opt(p, "--shell-layers", "systems[].shell_layers", int)
    _opt(p, "--shell-metal", "systems[].shell_metal")
    _opt(p, "--lattice-A", "structure.lattice_A", float)
    _opt(p, "--vacuum-A", "structure.vacuum_A", float)
    p.add_argument("--out", required=True, help="extended XYZ file; JSON sidecar written next to it")
    p.set_defaults(func=_run_build)


def _run_build(args: argparse.Namespace) -> int:
    from qdphonon.structures.build import build_quantum_dot
    from qdphonon.structures.io import write_structure
    from qdphonon.structures.model import QuantumDotSpec

    spec = QuantumDotSpec(
        size=tuple(args.size),
        shell_layers=args.shell_layers,
        shell_metal=args.shell_metal,
        lattice_A=args.lattice_A,
        vacuum_A=args.vacuum_A,
    )
    dot = build_quantum_dot(spec)
    write_structure(dot, args.out)
    return 0


# --- cp2k-input ---------------------------------------------------------------
def _add_cp2k_input(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cp2k-input", help="write a validated CP2K input (MD or geometry optimisation)")
    p.add_argument("--structure", required=True, help="extended XYZ written by 'qdphonon build' (or a relaxation)")
    _opt(p, "--level", "level")
    p.add_argument("--run-type", default="MD", choices=["MD", "GEO_OPT"])
    _opt(p, "--md-temperature-K", "md.temperature_K", float)
    _opt(p, "--timestep-fs", "md.timestep_fs", float)
    _opt(p, "--steps", "md.steps", int)
    p.add_argument("--seed", type=int, default=settings.default("md.seed"), help="the replica's seed (CP2K SEED)")
    _opt(p, "--thermostat-timecon-fs", "md.thermostat_timecon_fs", float)
    _opt(p, "--trajectory-every-steps", "md.trajectory_every_steps", int)
    _opt(p, "--trajectory-format", "md.trajectory_format")
    _opt(p, "--localisation-every-steps", "md.localisation_every_steps", int)
    _add_scf(p)
    _opt(p, "--relax-max-iter", "relax.max_iter", int)
    _alias(p, "--geo-opt-max-iter", "--relax-max-iter")
    p.add_argument("--walltime-min", type=float, default=None, help="CP2K's own WALLTIME in minutes (default: none)")
    p.add_argument("--walltime-s", type=int, default=None, help=argparse.SUPPRESS)
    _opt(p, "--overrides-json", "cp2k.overrides", _json_object)
    _opt(p, "--cp2k-command", "cp2k.command")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_run_cp2k_input)


def _run_cp2k_input(args: argparse.Namespace) -> int:

    from qdphonon.cp2k.inputs import MDSettings, SCFSettings, cp2k_input_tree
    from qdphonon.cp2k.xmlspec import installed_xmlspec, render_input
    from qdphonon.structures.io import read_structure

    dot = read_structure(args.structure)
    overrides = args.overrides_json
    tree = cp2k_input_tree(
        dot.symbols,
        dot.positions_A,
        dot.box_A,
        level=args.level,
        run_type=args.run_type,
        md=MDSettings(
            temperature_K=args.md_temperature_K,
            timestep_fs=args.timestep_fs,
            steps=args.steps,
            thermostat_timecon_fs=args.thermostat_timecon_fs,
            trajectory_every_steps=args.trajectory_every_steps,
            trajectory_format=args.trajectory_format,
            seed=args.seed,
        ),
        scf=SCFSettings(eps_scf=args.eps_scf, max_scf=args.max_scf, smearing_K=args.smearing_K),
        walltime_s=args.walltime_s if args.walltime_s is not None else
        (None if args.walltime_min is None else round(60.0 * args.walltime_min)),
        geo_opt_max_iter=args.relax_max_iter,
        overrides=overrides,
        regions=dot.regions,
        localisation_every_steps=args.localisation_every_steps,
    )
    spec, description = installed_xmlspec(args.cp2k_command)
    text = render_input(tree, spec)
    header = f"! qdphonon {args.run_type} input, level {args.level}; validated against {description}\n"
    with open(args.out, "w") as fh:
        fh.write(header + text)
    print(f"validated against {description}", file=sys.stderr)
    return 0


# --- run (engines) ------------------------------------------------------------
def _add_scf(p: argparse.ArgumentParser) -> None:
    _opt(p, "--eps-scf", "scf.eps_scf", float)
    _opt(p, "--max-scf", "scf.max_scf", int)
    _opt(p, "--smearing-K", "scf.smearing_K", float)


def _add_cp2k_launch(p: argparse.ArgumentParser) -> None:
    _opt(p, "--cp2k-command", "cp2k.command")
    _opt(p, "--mpi-launcher", "cp2k.mpi_launcher")
    _alias(p, "--mpi", "--mpi-launcher")
    p.add_argument("--tasks", type=int, default=1, help="MPI ranks (1: a single rank without the launcher)")
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per rank")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run-aimd", help="run (or continue) an AIMD with real CP2K or the synthetic mock engine")
    p.add_argument("--input", required=True, help="the MD input (qdphonon cp2k-input)")
    p.add_argument("--run-dir", required=True, help="directory of the segments and CP2K's files")
    _opt(p, "--engine", "engine")
    p.add_argument("--structure", required=True, help="labelled extended XYZ of the MD's start structure")
    p.add_argument("--record", default=None, help="run.json written on completion (default RUN_DIR/run.json)")
    p.add_argument("--initial-wfn", default=None, help="wavefunction the first SCF starts from (the relaxation's)")
    _add_cp2k_launch(p)
    p.add_argument("--runtime-min", type=float, default=None, help="job wall time in minutes (sets CP2K's WALLTIME)")
    _opt(p, "--walltime-margin-min", "cp2k.walltime_margin_min", float)
    _opt(p, "--scf-on-failure", "scf.on_failure")
    _alias(p, "--on-scf-failure", "--scf-on-failure")
    _opt(p, "--mock-json", "mock", _json_object)
    _alias(p, "--mock-params-json", "--mock-json")
    p.set_defaults(func=_run_aimd)

    r = sub.add_parser("relax", help="geometry optimisation at the MD's level (mock: pass the structure through)")
    r.add_argument("--structure", required=True)
    _opt(r, "--engine", "engine")
    _opt(r, "--level", "level")
    r.add_argument("--workdir", required=True, help="directory of relax.inp/relax.out and CP2K's files")
    r.add_argument("--out", required=True, help="relaxed structure (extended XYZ, labels kept)")
    r.add_argument("--wfn-out", default=None, help="copy of the last SCF's wavefunction (cp2k engine)")
    _add_cp2k_launch(r)
    _opt(r, "--relax-max-iter", "relax.max_iter", int)
    _alias(r, "--max-iter", "--relax-max-iter")
    _add_scf(r)
    _opt(r, "--overrides-json", "cp2k.overrides", _json_object)
    r.set_defaults(func=_run_relax)


def _run_aimd(args: argparse.Namespace) -> int:
    from qdphonon.engines.cp2k import run_cp2k
    from qdphonon.run.errors import EngineError, RunInterrupted, WalltimeReached
    from qdphonon.engines.mock import run_mock

    try:
        if args.engine == "mock":
            record = run_mock(args.input, args.run_dir, args.structure,
                                      _json_object(args.mock_json), record_path=args.record)
        else:
            record = run_cp2k(
                args.input, args.run_dir, cp2k_command=args.cp2k_command, mpi=resolve_launcher(args.mpi_launcher), tasks=args.tasks,
                threads=args.threads, runtime_min=args.runtime_min, walltime_margin_min=args.walltime_margin_min,
                on_scf_failure=args.scf_on_failure, record_path=args.record, initial_wfn=args.initial_wfn,
            )  # fmt: skip
    except (WalltimeReached, RunInterrupted) as exc:
        print(f"qdphonon run-aimd: {exc}", file=sys.stderr)
        return exc.exit_status
    except EngineError as exc:
        print(f"qdphonon run-aimd: error: {exc}", file=sys.stderr)
        return 1
    print(f"run-aimd: {record['engine']} run complete, {record['total_steps']} MD steps"
          + (" (synthetic)" if record.get("synthetic") else ""), file=sys.stderr)  # fmt: skip
    return 0


def _run_relax(args: argparse.Namespace) -> int:
    from qdphonon.run.errors import EngineError, RunInterrupted
    from qdphonon.engines.relax import relax

    try:
        summary = relax(
            args.structure, args.workdir, args.out, args.level, engine=args.engine, cp2k_command=args.cp2k_command,
            mpi=resolve_launcher(args.mpi_launcher), tasks=args.tasks, threads=args.threads, max_iter=args.relax_max_iter,
            smearing_K=args.smearing_K, eps_scf=args.eps_scf, max_scf=args.max_scf,
            overrides=_json_object(args.overrides_json), wfn_out=args.wfn_out,
        )  # fmt: skip
    except RunInterrupted as exc:
        print(f"qdphonon relax: {exc}", file=sys.stderr)
        return exc.exit_status
    except EngineError as exc:
        print(f"qdphonon relax: error: {exc}", file=sys.stderr)
        return 1
    print(f"relax: {summary}", file=sys.stderr)
    return 0


# --- parse-cp2k (parsers) -----------------------------------------------------
def _add_parse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse-cp2k", help="band edges (CSV) and trajectories (NPZ) from a CP2K run directory")
    p.add_argument("--run-dir", required=True, help="a CP2K MD directory: ours (segments.json) or any CP2K run")
    p.add_argument("--output", action="append", default=None, metavar="FILE",
                   help="a CP2K main output of the run, repeated in run order (default: found by CP2K's banner)")
    p.add_argument("--molog", default=None, help="the MOLog file (default: the one {project}-*.MOLog present)")
    p.add_argument("--out", required=True, help="band-edge CSV (step,time_fs,vbm_eV,cbm_eV,gap_eV,scf_converged) "
                   "and its .json sidecar")
    p.add_argument("--trajectory-out", default=None, help="NPZ with velocities (A/fs), positions (A), time_fs, step, symbols")
    p.add_argument("--structure", default=None, help="extended XYZ with a region column: per-atom regions in the NPZ")
    _opt(p, "--scf-on-failure", "scf.on_failure", default=None, help=settings.describe("scf.on_failure").replace(
        " (config", "; default here: the policy the run recorded, else the schema's (config"))
    _alias(p, "--on-scf-failure", "--scf-on-failure")
    p.set_defaults(func=_run_parse)


def _run_parse(args: argparse.Namespace) -> int:
    import warnings

    from qdphonon.parsers.common import ParseWarning
    from qdphonon.parsers.run_dir import parse_run_dir
    from qdphonon.parsers.writers import write_band_edges_csv, write_trajectory_npz

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ParseWarning)
        result = parse_run_dir(args.run_dir, on_scf_failure=args.scf_on_failure, outputs=args.output,
                               molog=args.molog)
        write_band_edges_csv(result, args.out)
        if args.trajectory_out:
            write_trajectory_npz(result, args.trajectory_out, regions=args.structure)
    for w in caught:
        print(f"parse-cp2k: warning: {w.message}", file=sys.stderr)
    e = result.band_edges
    label = " [synthetic (mock engine)]" if result.synthetic else ""
    print(
        f"parse-cp2k: {e.step.size} steps of band edges ({result.n_scf_unconverged} SCF not converged, "
        f"policy {result.scf_policy}), "
        f"{result.velocities.n_frames if result.velocities else 0} trajectory frames{label}",
        file=sys.stderr,
    )
    return 0


def _add_analysis(sub: argparse._SubParsersAction) -> None:
    add_analysis_parsers(sub, _opt, _alias, _floats)


# --- plot (plots) -------------------------------------------------------------
def _add_plot(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="campaign figures (PNG + PDF) from summary.csv and analysis directories")
    p.add_argument("--summary", required=True)
    p.add_argument("--analysis-dirs", nargs="+", required=True, metavar="DIR")
    p.add_argument("--outdir", required=True)
    p.set_defaults(func=_run_plot)


def _run_plot(args: argparse.Namespace) -> int:
    from qdphonon.figures import campaign as plots
    for path in plots.plot_campaign(args.summary, args.analysis_dirs, args.outdir):
        print(path)
    return 0


def add_report_pages_parser(sub) -> None:
    """Register ``qdphonon report-pages`` on an argparse sub-parsers object."""
    from qdphonon.report_pages import write_report_pages

    p = sub.add_parser("report-pages", help="the report's summary table (HTML) and start page (reST) from summary.csv")
    p.add_argument("--summary", required=True)
    _opt(p, "--engine", "engine")
    p.add_argument("--html-out", required=True, help="the summary as an HTML table (a report item)")
    p.add_argument("--rst-out", required=True, help="the report's start page with the headline numbers")
    p.set_defaults(func=lambda args: write_report_pages(args.summary, args.html_out, args.rst_out, args.engine) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered; each takes ``--settings-json``."""
    from qdphonon import __version__

    parser = argparse.ArgumentParser(prog="qdphonon", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"qdphonon {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_build, _add_cp2k_input, _add_run, _add_parse, _add_analysis, _add_plot, add_report_pages_parser,
                add_check_parser, add_status_parser, add_cost_parser, add_reevaluate_parser, add_claims_parsers,
                add_anharmonicity_parsers):
        add(sub)
    add_harmonic_parsers(sub, _opt, _add_cp2k_launch, _json_object)
    for p in sub.choices.values():
        add_settings_option(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``qdphonon`` console script."""
    args = apply_settings(build_parser(), argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"qdphonon {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
