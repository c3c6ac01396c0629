"""Options that mirror config settings, and ``--settings-json``: a sub-command's settings as one JSON
object keyed by config key.

:func:`opt` declares a flag for a config setting (its default, choices and help from the schema,
:mod:`qdphonon.settings`) and records the setting's dotted key on the argparse action, so the
Snakemake rules pass the config's own keys (``{"relax.max_iter": 200, "cp2k.command": ...}``)
and never rename them into option names. Options that mirror no setting (paths, ranks, a
replica's seed) are keyed by their destination (``tasks``, ``per_job``).
"""

from __future__ import annotations

import argparse
import json

from qdphonon import settings
from qdphonon.cli.types import json_object


def opt(p: argparse.ArgumentParser, flag: str, key: str, type=None, **kw) -> argparse.Action:
    """A flag mirroring the config setting ``key``: its default, choices and help come from the schema
    (``kw`` may set them otherwise); ``--settings-json`` takes it under ``key``."""
    node = settings.node(key)
    kw.setdefault("default", settings.default(key) if "default" in node else None)
    if "enum" in node:
        kw.setdefault("choices", settings.choices(key))
    kw.setdefault("help", settings.describe(key))
    action = p.add_argument(flag, type=type, **kw)
    action.config_key = key
    return action


def config_key(action: argparse.Action) -> str | None:
    """The config setting an option mirrors (declared with :func:`opt`), else None."""
    return getattr(action, "config_key", None)


def alias(p: argparse.ArgumentParser, old: str, new: str) -> None:
    """``old``: a hidden, deprecated spelling of the option ``new`` (same destination, type and choices)."""
    action = next(a for a in p._actions if new in a.option_strings)  # noqa: SLF001
    p.add_argument(old, dest=action.dest, type=action.type, choices=action.choices, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)


def settings_keys(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The keys ``--settings-json`` takes for sub-command ``p``, each with its option: the config key of
    an option that mirrors a setting, the destination of one that does not."""
    out: dict[str, argparse.Action] = {}
    for a in p._actions:  # noqa: SLF001
        if a.option_strings and a.help is not argparse.SUPPRESS and a.dest not in ("help", "settings_json"):
            key = config_key(a) or a.dest
            if key in out:
                raise ValueError(f"{p.prog}: {out[key].option_strings[0]} and {a.option_strings[0]} share the key {key}")
            out[key] = a
    return out


def settings_example(p: argparse.ArgumentParser) -> str:
    """A ``--settings-json`` value this sub-command accepts: its first option with a plain default,
    under its config key (or its destination when it mirrors no setting)."""
    for key, a in settings_keys(p).items():
        if isinstance(a.default, (int, float, str)) and not isinstance(a.default, bool):
            return json.dumps({key: a.default})
    return "{}"


def add_settings_option(p: argparse.ArgumentParser) -> None:
    """``--settings-json``, with an example this sub-command accepts in its help."""
    example = settings_example(p).replace("%", "%%")
    p.add_argument("--settings-json", type=json_object, action="append", default=None, metavar="JSON",
                   help=f"a JSON object of this command's settings keyed by config key, e.g. '{example}' (an option "
                        "that mirrors no config setting by its name, _ for -); may be repeated (a key in two "
                        "records is an error); flags given on the command line win")  # fmt: skip


def apply_settings(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse ``argv``; values of ``--settings-json`` fill options not given as flags.

    Several records merge (a key in two is an error). A key is an option's config key, or its
    destination when it mirrors no setting. The
    destination of an option that mirrors a setting is refused naming the config key to use; an
    unknown key is refused; values are converted and checked against the choices as flags are.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("command", nargs="?")
    pre.add_argument("--settings-json", type=json_object, action="append", default=None)
    known, _ = pre.parse_known_args(argv)
    sub = parser._subparsers._group_actions[0].choices.get(known.command)  # noqa: SLF001
    records, known.settings_json = known.settings_json or [], {}
    for record in records:
        twice = sorted(set(record) & set(known.settings_json))
        if twice:
            parser.error(f"{known.command}: --settings-json: {', '.join(twice)} given in two records")
        known.settings_json.update(record)
    if known.settings_json and sub is not None:
        head = f"{known.command}: --settings-json:"
        actions = settings_keys(sub)
        by_dest = {a.dest: key for key, a in actions.items() if config_key(a)}
        renamed = sorted(k for k in known.settings_json if k not in actions and k in by_dest)
        if renamed:
            parser.error(f"{head} " + "; ".join(f"{k!r} is the option's name, not its config key: use {by_dest[k]!r}"
                                                for k in renamed))  # fmt: skip
        unknown = sorted(set(known.settings_json) - set(actions))
        if unknown:
            parser.error(f"{head} unknown setting(s) {', '.join(unknown)}; it takes {', '.join(sorted(actions))}")
        for key, value in known.settings_json.items():
            action = actions[key]
            if action.type is not None and isinstance(value, str):
                value = action.type(value)
            if action.choices is not None and value not in action.choices:
                parser.error(f"{head} {key}={value!r} is not one of {list(action.choices)}")
            action.default, action.required = value, False
    return parser.parse_args(argv)
