"""Unpacking the shipped fixture and validation archives the same way on every Python the package allows."""

from __future__ import annotations

import os
import tarfile
from typing import Iterable


def extract(tar: tarfile.TarFile, dest: str | os.PathLike, members: Iterable[tarfile.TarInfo] | None = None) -> None:
    """``tar.extractall`` with the ``data`` filter (no absolute paths, links out of ``dest`` or device
    files) where tarfile has it (3.11.4 on), else without: ``pyproject.toml`` allows 3.11.0, whose
    ``extractall`` has no ``filter`` argument."""
    kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    tar.extractall(dest, members=members, **kwargs)
