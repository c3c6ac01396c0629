"""``qdphonon check`` and ``qdphonon status``: read-only views of a campaign's results tree.

Both read the campaign's config (validated, defaults filled in); a missing or broken config is
one line naming the file and the key (or line), exit status 1. Exit status 0 when every row is
complete, else 3.
"""

from __future__ import annotations

import argparse
import sys


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default="results")
    p.add_argument("--config", default="config/config.yaml", help="the campaign's config (validated)")


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


def _load_config(path: str, command: str) -> dict | None:
    """The campaign config, validated (defaults filled in); None after printing why it is invalid."""
    from qdphonon.config import ConfigError, load_config_file, validate_config

    try:
        return validate_config(load_config_file(path))
    except ConfigError as exc:
        where = "" if str(exc).startswith(str(path)) else f"{path}: "
        print(f"qdphonon {command}: error: invalid config {where}{exc}", file=sys.stderr)
        return None


def _report(rows: list[dict], as_json: bool, table) -> int:
    import json

    print(json.dumps(rows, indent=1, sort_keys=True) if as_json else table(rows))
    return 0 if all(r["complete"] for r in rows) else 3


def _run_check(args: argparse.Namespace) -> int:
    from qdphonon import provenance

    config = _load_config(args.config, "check")
    if config is None:
        return 1
    return _report(provenance.campaign_provenance(args.results, config), args.json, provenance.format_table)


def _run_status(args: argparse.Namespace) -> int:
    from qdphonon import status

    config = _load_config(args.config, "status")
    if config is None:
        return 1
    return _report(status.campaign_status(args.results, config), args.json, status.format_status)
