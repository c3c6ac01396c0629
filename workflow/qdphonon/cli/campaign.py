"""``qdphonon check`` and ``qdphonon status``: read-only views of a campaign's results tree.

Both read the campaign's config as ``qdphonon cost`` does: the ``--configfile`` files merged over
``config/config.yaml`` as Snakemake does; without them, the merged config the last Snakemake run
recorded in the results directory (``campaign_config.json``); else ``config/config.yaml``. Validated,
defaults filled in. A missing results directory, no config named, or a missing or broken config is one
line naming the directory, file or key (or line), exit status 1. Exit status 0 when every row
is complete, else 3.
"""

from __future__ import annotations

import argparse
import sys


def _add_common(p: argparse.ArgumentParser) -> None:
    from qdphonon.cli.cost import add_configfile_option

    p.add_argument("--results", default="results", help="the campaign's results directory (default: results)")
    add_configfile_option(p)


def add_check_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="provenance and completeness of a results tree, per system")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="JSON instead of a tab-separated table")
    p.set_defaults(func=_run_check)


def add_status_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="where a campaign stands: steps, segments, s/step, time left, running now")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(func=_run_status)


def _load_config(args: argparse.Namespace, command: str) -> dict | None:
    """The campaign config, validated (defaults filled in), when ``args.results`` is a directory;
    None after printing one line saying why not."""
    from pathlib import Path

    from qdphonon.config import ConfigError
    from qdphonon.cli.cost import BASE_CONFIG, campaign_config

    if not Path(args.results).is_dir():
        print(f"qdphonon {command}: error: results directory not found: {args.results}", file=sys.stderr)
        return None
    try:
        config = campaign_config(args.configfile, args.results, command)
    except ConfigError as exc:
        print(f"qdphonon {command}: error: {exc}", file=sys.stderr)
        return None
    named = {Path(f).resolve() for f in args.configfile}
    if args.configfile and Path(BASE_CONFIG).is_file() and Path(BASE_CONFIG).resolve() not in named:
        print(f"qdphonon {command}: config {BASE_CONFIG} + {' + '.join(args.configfile)} (merged as Snakemake "
              "does when run here)", file=sys.stderr)
    return config


def _report(rows: list[dict], as_json: bool, table) -> int:
    import json

    print(json.dumps(rows, indent=1, sort_keys=True) if as_json else table(rows))
    return 0 if all(r["complete"] for r in rows) else 3


def _run_check(args: argparse.Namespace) -> int:
    from qdphonon import provenance

    config = _load_config(args, "check")
    if config is None:
        return 1
    stale = provenance.summary_digest_mismatch(args.results, config)
    if stale:
        print(f"qdphonon check: warning: {stale}", file=sys.stderr)
    return _report(provenance.campaign_provenance(args.results, config), args.json, provenance.format_table)


def _run_status(args: argparse.Namespace) -> int:
    from qdphonon import status

    config = _load_config(args, "status")
    if config is None:
        return 1
    return _report(status.campaign_status(args.results, config), args.json, status.format_status)
