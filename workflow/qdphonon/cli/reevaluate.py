"""``qdphonon reevaluate``: band edges along an existing trajectory (:mod:`qdphonon.reevaluate`)."""

from __future__ import annotations

import argparse
import sys

from qdphonon.cli.settings import opt


def _cell(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected three comma-separated lengths in Angstrom, got {text!r}") from exc
    if len(values) != 3 or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"expected three positive comma-separated lengths in Angstrom, got {text!r}")
    return values


def add_reevaluate_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("reevaluate", help="band edges along an existing trajectory: CP2K single points (REFTRAJ) "
                       "at a stride, written like parse-cp2k")  # fmt: skip
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--run-dir", help="a CP2K MD directory (positions XYZ or DCD; cell, time step and T_md read from it)")
    src.add_argument("--trajectory", help="any trajectory ASE reads (extended XYZ, XDATCAR, vasprun.xml, LAMMPS dump ...)")
    opt(p, "--format", "external[].format", help="ASE format of --trajectory (config external[].format; default: "
        "guessed from the name)")  # fmt: skip
    opt(p, "--type-map", "external[].type_map", help="LAMMPS atom types to elements, e.g. 1=Cs,2=Pb,3=Br "
        "(config external[].type_map)")  # fmt: skip
    p.add_argument("--frame-every-steps", type=int, default=1,
                   help="MD steps between two frames of --trajectory (frames without a 'step' entry)")
    opt(p, "--cell-A", "external[].cell_A", _cell, metavar="A,B,C",
        help="cell lengths a,b,c in Angstrom when the source has none (config external[].cell_A)")
    opt(p, "--level", "external[].level", required=True)
    opt(p, "--stride-steps", "external[].stride_steps", int,
        help="source MD steps between two single points (config external[].stride_steps; default: the largest that "
             "samples at least twice the top of analysis.region_edges_meV, docs/physics.md)")  # fmt: skip
    opt(p, "--first-step", "external[].first_step", int,
        help="first source MD step evaluated (config external[].first_step; default: the first frame)")
    opt(p, "--timestep-fs", "external[].timestep_fs", float,
        help="MD time step of the source (where it does not record it) (config external[].timestep_fs)")
    opt(p, "--md-temperature-K", "external[].md_temperature_K", float,
        help="T_md of the source (where it does not record it) (config external[].md_temperature_K)")
    opt(p, "--eps-scf", "scf.eps_scf", float,
        help="EPS_SCF of the single points (config scf.eps_scf; default: the level's)")
    p.add_argument("--workdir", required=True, help="directory of the single points (frames.xyz, passNNN/)")
    p.add_argument("--out", required=True, help="band-edge CSV (parse-cp2k's columns, step = source MD step) + .json")
    opt(p, "--cp2k-command", "cp2k.command")
    opt(p, "--mpi-launcher", "cp2k.mpi_launcher")
    p.add_argument("--tasks", type=int, default=1, help="MPI ranks")
    p.add_argument("--threads", type=int, default=1, help="OpenMP threads per rank")
    p.add_argument("--runtime-min", type=float, default=None, help="job wall time in minutes (sets CP2K's WALLTIME)")
    opt(p, "--walltime-margin-min", "cp2k.walltime_margin_min", float)
    opt(p, "--scf-on-failure", "scf.on_failure")
    p.set_defaults(func=run_reevaluate_cli)


def read_source(args: argparse.Namespace):
    """The source trajectory the options name."""
    from qdphonon.parsers.source_trajectory import parse_type_map, read_ase_trajectory, read_cp2k_run

    if args.run_dir:
        return read_cp2k_run(args.run_dir, cell_A=args.cell_A)
    return read_ase_trajectory(args.trajectory, format=args.format, type_map=parse_type_map(args.type_map),
                               frame_every_steps=args.frame_every_steps, timestep_fs=args.timestep_fs,
                               md_temperature_K=args.md_temperature_K, cell_A=args.cell_A)  # fmt: skip


def run_reevaluate_cli(args: argparse.Namespace) -> int:
    from qdphonon.run.errors import EngineError, RunInterrupted, WalltimeReached
    from qdphonon.engines.launcher import resolve_launcher
    from qdphonon.reevaluate_run import reevaluate

    import warnings

    from qdphonon.parsers.common import ParseWarning

    source = read_source(args)
    try:
        with warnings.catch_warnings():  # each is printed once below, with its pass
            warnings.simplefilter("ignore", ParseWarning)
            result, plan = reevaluate(
                source, args.workdir, args.out, level=args.level, stride_steps=args.stride_steps,
                first_step=args.first_step, timestep_fs=args.timestep_fs, md_temperature_K=args.md_temperature_K,
                eps_scf=args.eps_scf, on_scf_failure=args.scf_on_failure, cp2k_command=args.cp2k_command,
                mpi=resolve_launcher(args.mpi_launcher), tasks=args.tasks, threads=args.threads, runtime_min=args.runtime_min,
                walltime_margin_min=args.walltime_margin_min,
            )  # fmt: skip
    except (WalltimeReached, RunInterrupted) as exc:
        print(f"qdphonon reevaluate: {exc}; run the same command again to continue", file=sys.stderr)
        return exc.exit_status
    except EngineError as exc:
        print(f"qdphonon reevaluate: error: {exc}", file=sys.stderr)
        return 1
    for w in result.warnings:
        print(f"reevaluate: warning: {w}", file=sys.stderr)
    print(f"reevaluate: {result.band_edges.step.size} of {plan.n_snapshots} snapshots (every {plan.stride_steps} MD "
          f"steps = {plan.effective_timestep_fs:g} fs) at level {plan.level} -> {args.out}", file=sys.stderr)  # fmt: skip
    return 0
