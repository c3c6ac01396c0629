"""The ``qdphonon`` command line: one sub-command per stage (:mod:`qdphonon.cli.commands` registers them;
the other modules here add the commands of one family each), every option that mirrors a config setting
named after it and filled from ``--settings-json`` by config key (:mod:`qdphonon.cli.settings`)."""

from qdphonon.cli.commands import apply_settings, build_parser, main

__all__ = ["apply_settings", "build_parser", "main"]
