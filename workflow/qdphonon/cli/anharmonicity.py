"""Sub-commands of the anharmonicity check: ``anharmonicity`` (one system's runs at several MD
temperatures -> anharmonicity.csv) and ``plot-anharmonicity`` (its figure). Thin calls into the package."""

from __future__ import annotations

import argparse

from qdphonon.cli.settings import opt
from qdphonon.cli.types import floats as _floats


def add_anharmonicity_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("anharmonicity", help="band edges of one system at several MD temperatures -> anharmonicity.csv")
    p.add_argument("--band-edges", nargs="+", required=True, metavar="CSV",
                   help="one CSV per replica and temperature (grouped by their sidecars' md_temperature_K)")
    p.add_argument("--trajectories", nargs="*", default=None, metavar="NPZ",
                   help="one .npz per band-edge table, same order (internal temperature of each replica)")
    opt(p, "--reference-temperature-K", "md.temperature_K", float, default=None,
        help="T_md whose harmonic extrapolation is tested, in K (config md.temperature_K; default: the lowest)")
    opt(p, "--report-temperature-K", "analysis.report_temperature_K", float)
    opt(p, "--region-edges-meV", "analysis.region_edges_meV", _floats)
    opt(p, "--band-cutoff-meV", "analysis.band_cutoff_meV", float)
    opt(p, "--md-equilibration-fs", "md.equilibration_fs", float)
    p.add_argument("--system", default=None)
    p.add_argument("--out", required=True, help="anharmonicity.csv (JSON sidecar written beside it)")
    p.set_defaults(func=_run_anharmonicity)
    q = sub.add_parser("plot-anharmonicity", help="anharmonicity figure (PNG + PDF) from anharmonicity.csv tables")
    q.add_argument("--tables", nargs="*", default=[], metavar="CSV")
    q.add_argument("--outdir", required=True)
    q.set_defaults(func=_run_plot)


def _run_anharmonicity(args: argparse.Namespace) -> int:
    from qdphonon.analysis.anharmonicity_io import anharmonicity_system

    table, meta = anharmonicity_system(
        args.band_edges, args.trajectories, reference_K=args.reference_temperature_K,
        report_temperature_K=args.report_temperature_K, region_edges_meV=args.region_edges_meV,
        band_cutoff_meV=args.band_cutoff_meV, discard_fs=args.md_equilibration_fs, out_csv=args.out, system=args.system,
    )  # fmt: skip
    for _, row in table.iterrows():
        print(f"T_md {row['md_temperature_K']:g} K: lambda {row['lambda_meV']:.4g} meV, "
              f"ratio {row['lambda_ratio']:.4g} [{row['lambda_ratio_lo']}, {row['lambda_ratio_hi']}]")  # fmt: skip
    return 0


def _run_plot(args: argparse.Namespace) -> int:
    from qdphonon.figures.anharmonicity import plot_anharmonicity

    for path in plot_anharmonicity(args.tables, args.outdir):
        print(path)
    return 0
