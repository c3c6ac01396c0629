"""Sub-commands of the study's further claims: ``attribute`` (region attribution of lambda),
``localise`` (where the band edges live) and ``plot-claims`` (their figures). Thin calls into the package."""

from __future__ import annotations

import argparse

from qdphonon.cli.settings import opt


def add_claims_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("attribute", help="band edges + trajectories (positions, regions) of one system -> attribution.csv")
    p.add_argument("--band-edges", nargs="+", required=True, metavar="CSV", help="one CSV per replica")
    p.add_argument("--trajectories", nargs="+", required=True, metavar="NPZ", help="one .npz per replica, same order")
    opt(p, "--md-temperature-K", "md.temperature_K", float, default=None,
        help="T_md in K (config md.temperature_K; default: md_temperature_K of the band-edge tables' sidecars)")
    opt(p, "--md-equilibration-fs", "md.equilibration_fs", float)
    p.add_argument("--discard-fs", type=float, dest="md_equilibration_fs", help=argparse.SUPPRESS)
    p.add_argument("--outdir", required=True)
    p.add_argument("--system", default=None)
    p.set_defaults(func=_run_attribute)
    loc = sub.add_parser("localise", help="the &PDOS/&LDOS prints of one system's AIMD runs -> localisation.csv")
    loc.add_argument("--run-records", nargs="+", required=True, metavar="JSON",
                     help="run.json of every replica (the list files are read from its directory)")
    loc.add_argument("--structure", required=True, help="the MD's structure (extended XYZ with region labels)")
    opt(loc, "--md-equilibration-fs", "md.equilibration_fs", float)
    loc.add_argument("--out", required=True, help="localisation.csv (its JSON sidecar is written beside it)")
    loc.add_argument("--system", default=None)
    loc.set_defaults(func=_run_localise)
    q = sub.add_parser("plot-claims", help="claims figures (PNG + PDF) from summary.csv")
    q.add_argument("--summary", required=True)
    q.add_argument("--outdir", required=True)
    q.add_argument("--figures", nargs="+", choices=["attribution", "localisation"], default=["attribution"],
                   help="which figures (default: attribution)")
    q.set_defaults(func=_run_plot_claims)


def _run_attribute(args: argparse.Namespace) -> int:
    from qdphonon.analysis.attribution_io import attribute_system
    from qdphonon.analysis.inputs import md_temperature_from_sidecars

    T_md = args.md_temperature_K if args.md_temperature_K is not None else md_temperature_from_sidecars(args.band_edges)
    att, meta = attribute_system(args.band_edges, args.trajectories, T_md, args.md_equilibration_fs, args.outdir, args.system)
    print(f"explained variance {meta['explained_variance_cv']:.3f} (cross-validated); "
          + ", ".join(f"{r} {v:.3g} meV" for r, v in att.lambda_meV.items()))  # fmt: skip
    return 0


def _run_localise(args: argparse.Namespace) -> int:
    from qdphonon.analysis.localisation_run import localise_system

    table, meta = localise_system(args.run_records, args.structure, args.out, args.md_equilibration_fs, args.system)
    s = meta["summary"]
    print(f"{len(table)} printed frames; core weight VBM {s['vbm_core']['mean']:.3f}, CBM {s['cbm_core']['mean']:.3f}"
          + (" (synthetic)" if meta["synthetic"] else ""))  # fmt: skip
    return 0


def _run_plot_claims(args: argparse.Namespace) -> int:
    from qdphonon.figures.claims import plot_claims

    for path in plot_claims(args.summary, args.outdir, args.figures):
        print(path)
    return 0
