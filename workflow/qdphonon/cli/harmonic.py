"""``qdphonon harmonic-run`` and ``qdphonon harmonic-analyze``: the harmonic route's stages (docs/physics.md §5)."""

from __future__ import annotations

import argparse
import json
import sys

from qdphonon.cli.types import floats as _floats


def add_harmonic_parsers(sub, opt, add_cp2k_launch, json_object) -> None:
    """Register the two sub-commands (``opt``, ``add_cp2k_launch``, ``json_object``: the helpers of :mod:`qdphonon.cli`)."""
    p = sub.add_parser("harmonic-run", help="run (or finish) a batch of the harmonic route's single points")
    p.add_argument("--structure", required=True, help="the tightly relaxed structure (extended XYZ)")
    p.add_argument("--workdir", required=True, help="directory of the single points (one sub-directory each)")
    p.add_argument("--batch", type=int, required=True, help="batch index: 0 = the reference, 1.. = displacements")
    p.add_argument("--per-job", type=int, required=True, help="displacements per batch")
    p.add_argument("--done", required=True, help="JSON record written when the batch is complete")
    p.add_argument("--initial-wfn", default=None,
                   help="wavefunction every SCF starts from (the relaxation's; cp2k engine)")
    p.add_argument("--cut", default=None, help="the ideal cut (extended XYZ) whose point group plans the symmetry scheme")
    opt(p, "--engine", "engine")
    opt(p, "--level", "level")
    opt(p, "--step-A", "harmonic.step_A", float)
    opt(p, "--displacements", "harmonic.displacements")
    opt(p, "--overrides-json", "cp2k.overrides", json_object)
    add_cp2k_launch(p)
    p.set_defaults(func=_run)

    a = sub.add_parser("harmonic-analyze", help="assemble the single points; write linewidth.json (route harmonic) etc.")
    a.add_argument("--structure", required=True)
    a.add_argument("--workdir", required=True)
    a.add_argument("--outdir", required=True)
    a.add_argument("--system", default=None)
    a.add_argument("--cut", default=None, help="the ideal cut (extended XYZ) whose point group planned the symmetry scheme")
    opt(a, "--level", "level")
    opt(a, "--engine", "engine")
    opt(a, "--step-A", "harmonic.step_A", float)
    opt(a, "--displacements", "harmonic.displacements")
    opt(a, "--degeneracy-tol-meV", "harmonic.degeneracy_tol_meV", float)
    opt(a, "--report-temperature-K", "analysis.report_temperature_K", float)
    opt(a, "--region-edges-meV", "analysis.region_edges_meV", _floats)
    a.set_defaults(func=_analyze)

    c = sub.add_parser("compare-routes", help="one system by both routes: route_comparison.csv and its figure")
    c.add_argument("--md", required=True, help="the MD route's analysis directory (analysis/SYSTEM)")
    c.add_argument("--harmonic", required=True, help="the harmonic route's analysis directory (analysis_harmonic/SYSTEM)")
    c.add_argument("--out", required=True, help="route_comparison.csv to write (with its JSON sidecar)")
    c.add_argument("--figure-dir", required=True, help="directory of the figure")
    c.add_argument("--figure-stem", required=True, help="file name of the figure without .png/.pdf")
    c.set_defaults(func=_compare)


def _run(args: argparse.Namespace) -> int:
    from qdphonon.engines.launcher import resolve_launcher
    from qdphonon.harmonic.runner import SinglePointFailed, batches, displacement_names, run_single_points
    from qdphonon.run.layout import write_json_atomic
    from qdphonon.structures.io import read_structure

    n_atoms = len(read_structure(args.structure).symbols)
    plan = _plan(args)
    groups = batches(displacement_names(n_atoms, args.step_A, plan), args.per_job)
    if not 0 <= args.batch < len(groups):
        raise ValueError(f"--batch {args.batch}: {n_atoms} atoms at {args.per_job} per job make batches 0-{len(groups) - 1}")
    try:
        status = run_single_points(args.structure, args.workdir, groups[args.batch], args.level, step_A=args.step_A,
                                   cp2k_command=args.cp2k_command, mpi=resolve_launcher(args.mpi_launcher), tasks=args.tasks,
                                   threads=args.threads, overrides=json_object_or_none(args.overrides_json),
                                   engine=args.engine, initial_wfn=args.initial_wfn, plan=plan)  # fmt: skip
    except SinglePointFailed as exc:
        print(f"qdphonon harmonic-run: error: {exc}", file=sys.stderr)
        return 1
    write_json_atomic(args.done, {"batch": args.batch, "status": status, "synthetic": args.engine == "mock"})
    print(f"harmonic-run: batch {args.batch}: {json.dumps(status)}", file=sys.stderr)
    return 0


def _plan(args: argparse.Namespace):
    """The point-group plan of the symmetry scheme (None: cartesian)."""
    if args.displacements == "cartesian":
        return None
    if not args.cut:
        raise ValueError("--displacements symmetry needs --cut (the ideal cut the displacements are planned on)")
    from qdphonon.harmonic.runner import cut_plan

    return cut_plan(args.cut, args.structure, args.step_A)


def json_object_or_none(value):
    return value or None


def _analyze(args: argparse.Namespace) -> int:
    from qdphonon.harmonic.report import analyze_harmonic_run

    result = analyze_harmonic_run(args.structure, args.workdir, args.outdir, level=args.level, system=args.system,
                                  step_A=args.step_A, displacements=args.displacements, cut_xyz=args.cut,
                                  degeneracy_tol_meV=args.degeneracy_tol_meV,
                                  report_temperature_K=args.report_temperature_K,
                                  region_edges_meV=args.region_edges_meV)  # fmt: skip
    print(f"harmonic-analyze: lambda {result['lambda_meV']:.4g} meV, main mode "
          f"{result['main_mode']['energy_meV']} meV" + (" (synthetic)" if result["synthetic"] else ""), file=sys.stderr)
    return 0


def _compare(args: argparse.Namespace) -> int:
    from qdphonon.analysis.route_comparison import write_route_comparison
    from qdphonon.figures.routes import plot_routes

    table = write_route_comparison(args.md, args.harmonic, args.out)
    plot_routes(args.md, args.harmonic, args.figure_dir, args.figure_stem)
    for row in table.itertuples():
        print(f"compare-routes: {row.quantity}: md {row.md:.4g}, harmonic {row.harmonic:.4g} "
              f"(ratio {row.harmonic_over_md:.3g})", file=sys.stderr)
    return 0
