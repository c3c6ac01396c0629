"""``qdphonon cost``: a campaign's CP2K cost as a table (text or Markdown), and reading the campaign's
config the way Snakemake does (``--configfile`` files merged over ``config/config.yaml``). The cost
model itself is :mod:`qdphonon.cost`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from qdphonon.cost import EXPONENT_BOUNDS, REF_RANKS, REF_THREADS, aimd_tasks, campaign_cost
from qdphonon.harmonic.cost import harmonic_cost, seconds_per_single_point


def harmonic_cost_lines(config: Mapping[str, Any]) -> list[str]:
    """One line per system: the harmonic route priced beside the MD route (every system, whatever its route)."""
    from qdphonon.config import campaign_from_config

    scheme = config["harmonic"]["displacements"]
    lines = [f"harmonic route ({'symmetry-reduced' if scheme == 'symmetry' else '6N'} displacements + the reference; "
             "s per single point measured on the shipped real campaigns (data/cp2k_single_point_costs.csv), "
             "else interpolated or scaled by the MD-step model; route per system in brackets):"]  # fmt: skip
    for s in campaign_from_config(config).values():
        h = harmonic_cost(config, s)
        status = seconds_per_single_point(config["level"], s.n_atoms, aimd_tasks({**config, "engine": "cp2k"}, s)).status
        lines.append(f"  {s.name} [{s.route}]: {h['single_points']} single points x {h['sp_s']:.3g} s ({status}) on "
                     f"{h['tasks']} ranks = {_num(h['core_h'])} core-h in {h['jobs']} jobs of <= {h['per_job']}")
    return lines


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


def _job_text(job: Mapping[str, int]) -> str:
    return f"{job['tasks']}x{job['cpus_per_task']}, {job['runtime_min']} min, {job['mem_mb'] / 1000:.1f} GB"


def _extrapolated_note(cost: Mapping[str, Any]) -> str:
    """``; N of M systems extrapolated: a lower bound`` when the total rests on extrapolated rows."""
    n = sum(r["status"] == "extrapolated" for r in cost["systems"])
    return f"; {n} of {len(cost['systems'])} systems extrapolated: read the total as a lower bound" if n else ""


def _table(cost: Mapping[str, Any]) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, one row of cells per system, and the notes (headline, total, model) of a cost."""
    head = ["system", "atoms", f"s/step, {REF_RANKS} ranks", "model", "MD steps (equil. + prod.) x replicas",
            "relax job", "AIMD job", "segments/replica", "wall time/replica", "core-h/replica", "core-h"]
    rows = [[r["system"], str(r["n_atoms"]), f"{r['s_per_step_ref']:.3g} s", r["status"],
             f"{r['md_steps']} ({r['equilibration_steps']} + {r['production_steps']}) x {r['replicas']}",
             _job_text(r["relax_job"]), _job_text(r["aimd_job"]), str(r["segments_per_replica"]),
             f"{r['wall_h_per_replica']:.3g} h", _num(r["core_h_per_replica"]), _num(r["core_h"])]
            for r in cost["systems"]]
    fit, t = cost["fit"], cost["totals"]
    pts = "; ".join(f"{p.n_atoms} atoms {p.s_per_step:g} s ({p.inputs}, measured/fit {p.ratio:.2f})"
                    for p in fit.points)
    mock = " (engine mock: what engine cp2k would cost; the mock itself takes seconds)" if cost["mock_engine"] else ""
    notes = [f"CP2K cost at level {cost['level']}{mock}",
             f"total: {len(rows)} systems, {t['replicas']} replicas, {_num(t['core_h'])} core-h "
             f"(AIMD {_num(t['aimd_core_h'])}, relaxations {_num(t['relax_core_h'])})" + _extrapolated_note(cost),
             f"model: {fit.level} s/step = {fit.prefactor_s:.4g} s x n_atoms^{fit.exponent:.3f} on {REF_RANKS} "
             f"ranks x {REF_THREADS} thread, fitted on {fit.basis} inputs"
             f"{' (exponent clipped to the physical range %g-%g)' % EXPONENT_BOUNDS if fit.exponent_clipped else ''}"
             f"{'' if fit.measured else ' (a fallback: no current inputs measured at two sizes)'}; points: {pts}"]
    return head, rows, notes


def cost_table_text(config: Mapping[str, Any]) -> str:
    """Plain text of :func:`campaign_cost`: a headline, one line per system, a total line, the model."""
    _, rows, notes = _table(campaign_cost(config))
    head = ["system", "atoms", f"s/step@{REF_RANKS}", "model", "steps (eq+prod) x reps", "relax job", "AIMD job",
            "segs", "wall/rep", "core-h/rep", "core-h"]
    widths = [max(len(c) for c in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(c.ljust(w) if i in (0, 3, 5, 6) else c.rjust(w)  # noqa: E731
                                  for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([notes[0], fmt(head), *map(fmt, rows), *notes[1:], *harmonic_cost_lines(config)])


def cost_table_markdown(config: Mapping[str, Any]) -> str:
    """Markdown table of :func:`campaign_cost`, with a footnote giving the measured points and the fit
    (prefactor, exponent, measured/fitted ratio per point)."""
    head, rows, notes = _table(campaign_cost(config))
    line = lambda cells: "| " + " | ".join(cells) + " |"  # noqa: E731
    align = ["---" if i in (0, 3, 5, 6) else "---:" for i in range(len(head))]
    body = [line([f"`{r[0]}`", *r[1:]]) for r in rows]
    return "\n".join([notes[0] + ":", "", line(head), line(align), *body, "",
                      f"{notes[1][0].upper()}{notes[1][1:]}. Jobs: MPI ranks x threads per rank, wall time, memory. "
                      "Model column: *measured* = a current measurement of that size and layout, *interpolated* / "
                      "*extrapolated* = inside / outside the sizes fitted; ideal scaling with cores assumed; "
                      f"relaxations priced at relax.max_iter steps (an upper bound). Fit: {notes[2][7:]}."])


def add_cost_parser(sub) -> None:
    """Register ``qdphonon cost`` on an argparse sub-parsers object."""
    p = sub.add_parser("cost", help="CP2K cost of a campaign (core-hours, job sizes) from the measured cost model")
    add_configfile_option(p)
    p.add_argument("--results", default="results", help="a campaign's results directory whose recorded config "
                   "(campaign_config.json) is used when no --configfile is given (default: results)")
    p.add_argument("--markdown", action="store_true", help="a Markdown table (docs/running.md's) instead of plain text")
    p.set_defaults(func=run_cost)


BASE_CONFIG = "config/config.yaml"
"""The Snakefile's ``configfile:``, relative to the directory Snakemake (and these commands) run in."""


def add_configfile_option(p) -> None:
    """``--configfile FILE...`` as Snakemake takes it (the same name in status, check and cost);
    ``--config`` is a hidden deprecated alias."""
    import argparse

    p.add_argument("--configfile", action="extend", nargs="+", default=[], metavar="FILE",
                   help=f"config files merged over {BASE_CONFIG} (when present here) as Snakemake does; later wins")
    p.add_argument("--config", dest="configfile", action="extend", nargs="+", help=argparse.SUPPRESS)


def load_merged_config(configfiles: Iterable[str | Path], base: str | Path = BASE_CONFIG) -> dict[str, Any]:
    """The validated config Snakemake would build: ``base`` (the Snakefile's ``configfile:``) when it
    exists, then each file merged recursively over it (mappings merge, other values replace);
    :class:`qdphonon.config.ConfigError` naming the files and the offending key, or saying that no
    config was named when there is neither a file given nor ``base`` (never a file the user did not name)."""
    from qdphonon.config import ConfigError, campaign_from_config, load_config_file, validate_config

    paths = [Path(f) for f in configfiles]
    if not paths and not Path(base).is_file():
        raise ConfigError(f"no config: name one with --configfile FILE (there is no {base} in {os.getcwd()})")
    if not any(p.resolve() == Path(base).resolve() for p in paths) and (Path(base).exists() or not paths):
        paths.insert(0, Path(base))  # leading base dropped when given again: same merged result

    def merge(into: dict, new: Mapping) -> dict:
        for k, v in new.items():
            into[k] = merge(into.get(k) if isinstance(into.get(k), dict) else {}, v) if isinstance(v, Mapping) else v
        return into

    config: dict[str, Any] = {}
    for path in paths:
        merge(config, load_config_file(path))
    try:
        campaign_from_config(validate_config(config))
    except ConfigError as exc:
        raise ConfigError(f"invalid config ({' + '.join(map(str, paths))}): {exc}") from None
    return config


def campaign_config(configfiles: Iterable[str | Path], results: str | Path, command: str) -> dict[str, Any]:
    """The config a campaign command describes: the ``--configfile`` files merged as Snakemake does when
    given; else the merged config the last Snakemake run recorded in ``results``
    (:data:`qdphonon.config.CAMPAIGN_CONFIG_FILE`, said on stderr), so that ``qdphonon status`` after
    ``snakemake --configfile X`` describes X's campaign; else ``config/config.yaml``."""
    import sys

    from qdphonon.config import CAMPAIGN_CONFIG_FILE, ConfigError, campaign_from_config, load_config_file, validate_config

    recorded = Path(results) / CAMPAIGN_CONFIG_FILE
    if list(configfiles) or not recorded.is_file():
        return load_merged_config(configfiles)
    config = load_config_file(recorded)
    try:
        campaign_from_config(validate_config(config))
    except ConfigError as exc:
        raise ConfigError(f"invalid config ({recorded}): {exc}") from None
    print(f"qdphonon {command}: config {recorded} (the merged config of the last snakemake run; "
          "--configfile to choose another)", file=sys.stderr)
    return config


def run_cost(args) -> int:
    """``qdphonon cost``: print the campaign's cost (plain text, or ``--markdown``)."""
    config = campaign_config(args.configfile, args.results, "cost")
    print(cost_table_markdown(config) if args.markdown else cost_table_text(config))
    return 0
