"""``qdphonon analyze`` (one system's band edges and velocities -> spectrum, lambda, widths) and
``qdphonon summarize`` (the campaign's summary.csv): thin calls into :mod:`qdphonon.analysis`."""

from __future__ import annotations

import argparse


def add_analysis_parsers(sub: argparse._SubParsersAction, _opt, _alias, _floats) -> None:
    """Register ``analyze`` and ``summarize`` (``_opt``, ``_alias``, ``_floats``: the helpers of :mod:`qdphonon.cli`)."""
    p = sub.add_parser(
        "analyze",
        help="band edges (and velocities) of one system -> spectral_density.csv, linewidth.json, vdos.csv",
    )
    p.add_argument("--band-edges", nargs="+", required=True, metavar="CSV", help="one CSV per replica")
    _opt(p, "--md-temperature-K", "md.temperature_K", float, default=None,
         help="T_md of the MD in K (config md.temperature_K; default: md_temperature_K of the tables' "
              ".json sidecars; a sidecar that says otherwise is refused)")
    _opt(p, "--report-temperature-K", "analysis.report_temperature_K", float)
    p.add_argument("--outdir", required=True)
    _opt(p, "--region-edges-meV", "analysis.region_edges_meV", _floats)
    _alias(p, "--regions", "--region-edges-meV")
    _opt(p, "--md-equilibration-fs", "md.equilibration_fs", float)
    _alias(p, "--discard-fs", "--md-equilibration-fs")
    p.add_argument("--velocities", nargs="+", default=None, metavar="NPZ", help="velocity .npz per replica (VDOS)")
    p.add_argument("--structure-json", default=None, help="the system's structure JSON sidecar (qdphonon build)")
    _opt(p, "--blocks", "analysis.blocks", int)
    _opt(p, "--band-cutoff-meV", "analysis.band_cutoff_meV", float)
    _opt(p, "--temperatures-K", "analysis.temperatures_K", _floats)
    p.add_argument("--system", default=None, help="system name (default: structure JSON or outdir name)")
    p.set_defaults(func=_run_analyze)

    s = sub.add_parser("summarize", help="per-system linewidth.json + structure JSON -> campaign summary.csv")
    s.add_argument("--linewidths", nargs="+", required=True, metavar="JSON")
    s.add_argument("--structures", nargs="*", default=[], metavar="JSON")
    s.add_argument("--out", required=True)
    s.add_argument("--config-digest", default=None, help="digest of the campaign's config, recorded in every row")
    s.set_defaults(func=_run_summarize)


def _run_analyze(args: argparse.Namespace) -> int:
    from qdphonon.analysis.inputs import md_temperature_from_sidecars
    from qdphonon.analysis.system import analyze_system

    md_temperature_K = args.md_temperature_K
    if md_temperature_K is None:
        md_temperature_K = md_temperature_from_sidecars(args.band_edges)
    analyze_system(
        args.band_edges,
        md_temperature_K=md_temperature_K,
        report_temperature_K=args.report_temperature_K,
        band_cutoff_meV=args.band_cutoff_meV,
        temperatures_K=args.temperatures_K,
        region_edges_meV=args.region_edges_meV,
        discard_fs=args.md_equilibration_fs,
        outdir=args.outdir,
        velocities_npz=args.velocities,
        structure_json=args.structure_json,
        n_blocks=args.blocks,
        system=args.system,
    )
    return 0


def _run_summarize(args: argparse.Namespace) -> int:
    from qdphonon.analysis.summary import write_summary

    write_summary(args.linewidths, args.structures, args.out, config_digest=args.config_digest)
    return 0
