"""The installed CP2K's input definition (``cp2k --xml``, cached per version and cut to the sections
an input opens) and rendering/validating input trees with cp2k-input-tools.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import re
import shutil
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Mapping, Sequence
from qdphonon.cp2k.inputs import CP2KInputError


def bundled_xmlspec() -> Path:
    """The CP2K input definition shipped with cp2k-input-tools (CP2K 2024.1 for 0.9.3)."""
    from cp2k_input_tools import DEFAULT_CP2K_INPUT_XML

    return Path(DEFAULT_CP2K_INPUT_XML)


def cp2k_version(cp2k_command: str) -> str | None:
    """The version string of a CP2K executable (e.g. ``2023.1``), or None if it does not run."""
    exe = shutil.which(cp2k_command)
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"CP2K version\s+(\S+)", out)
    return match.group(1) if match else None


def installed_xmlspec(cp2k_command: str = "cp2k.psmp", cache_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The input definition of the installed CP2K (cached per version), or the bundled one.

    Returns ``(path, description)`` where the description says which definition is used.
    """
    version = cp2k_version(cp2k_command)
    if version is None:
        return bundled_xmlspec(), "bundled with cp2k-input-tools (no CP2K found as %r)" % cp2k_command
    cache = Path(cache_dir or os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qdphonon" / f"cp2k-{version}"
    spec = cache / "cp2k_input.xml"
    if not spec.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = Path(cache, f".xml-{os.getpid()}")
        tmp.mkdir(exist_ok=True)
        subprocess.run([shutil.which(cp2k_command), "--xml"], cwd=tmp, capture_output=True, check=True, timeout=300)
        os.replace(tmp / "cp2k_input.xml", spec)
        shutil.rmtree(tmp, ignore_errors=True)
    return spec, f"CP2K {version} ({cp2k_command} --xml)"


_SECTION_LINE = re.compile(r"^\s*&(?!END\b)([A-Za-z_][A-Za-z0-9_]*)", re.IGNORECASE | re.MULTILINE)


_SPEC_DOC_TAGS = ("DESCRIPTION", "USAGE", "LOCATION", "REFERENCE", "DEPRECATION_NOTICE")


def _cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "qdphonon"


def input_sections(text: str) -> set[str]:
    """Upper-case names of the sections opened in a CP2K input text."""
    return {m.group(1).upper() for m in _SECTION_LINE.finditer(text)}


def xmlspec_subset(xmlspec: str | os.PathLike, sections: set[str]) -> Path:
    """A cached copy of a CP2K input definition reduced to the named sections (and no documentation).

    Loading the full definition (~28 MB) costs seconds; the subset loads in milliseconds and
    reads or renders any input that opens only those sections (every keyword of a kept
    section is kept). Cached under ``$XDG_CACHE_HOME/qdphonon/xmlspec-subsets`` by the source's
    path, size, mtime and the section set.
    """
    src = Path(xmlspec).resolve()
    stat = src.stat()
    key = hashlib.sha256(f"{src}:{stat.st_size}:{stat.st_mtime_ns}:{','.join(sorted(sections))}".encode()).hexdigest()
    out = _cache_root() / "xmlspec-subsets" / f"{key[:24]}.xml"
    if out.exists():
        return out
    root = ET.parse(src).getroot()
    _prune_spec(root, {s.upper() for s in sections})
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".xml")
    with os.fdopen(fd, "wb") as fh:
        ET.ElementTree(root).write(fh)
    os.replace(tmp, out)
    return out


def _prune_spec(element: ET.Element, keep: set[str]) -> None:
    for child in list(element):
        if child.tag in _SPEC_DOC_TAGS:
            element.remove(child)
        elif child.tag == "SECTION":
            if (child.findtext("NAME") or "").upper() in keep:
                _prune_spec(child, keep)
            else:
                element.remove(child)
        elif child.tag == "KEYWORD":
            for doc in [c for c in child if c.tag in _SPEC_DOC_TAGS]:
                child.remove(doc)


def parse_input_text(text: str, xmlspec: str | os.PathLike, extra_sections: Sequence[str] = ()) -> dict[str, Any]:
    """The canonical cp2k-input-tools tree (``+section`` keys, lower case) of a CP2K input text."""
    spec = xmlspec_subset(xmlspec, input_sections(text) | {s.upper() for s in extra_sections})
    return input_parser(str(spec)).parse(io.StringIO(text))


def _drop_none(tree: Any) -> Any:
    if isinstance(tree, Mapping):
        return {k: _drop_none(v) for k, v in tree.items() if v is not None}
    if isinstance(tree, list):
        return [_drop_none(v) for v in tree]
    return tree


@functools.lru_cache(maxsize=4)
def _spec_tree(spec: str):
    """The parsed input definition, shared by generator and parser."""
    return ET.parse(spec)


@functools.lru_cache(maxsize=4)
def _generator(spec: str):
    from cp2k_input_tools.generator import CP2KInputGenerator

    generator = CP2KInputGenerator.__new__(CP2KInputGenerator)
    generator._parse_tree, generator._shift = _spec_tree(spec), 3
    return generator


@functools.lru_cache(maxsize=4)
def input_parser(spec: str):
    """A cached cp2k-input-tools parser for one input definition (its ``parse`` resets state)."""
    from cp2k_input_tools.parser import CP2KInputParser

    parser = CP2KInputParser.__new__(CP2KInputParser)
    parser._spec, parser._tree, parser._treerefs = _spec_tree(spec), None, []
    parser._key_trafo, parser._base_inc_dir = str.lower, "."
    return parser


def tree_sections(tree: Any) -> set[str]:
    """Upper-case names of every section a (canonical or simplified) input tree opens."""
    names: set[str] = set()
    if isinstance(tree, Mapping):
        for key, value in tree.items():
            if isinstance(value, Mapping) or (isinstance(value, list) and value and all(isinstance(x, Mapping) for x in value)):
                names.add(key.lstrip("+&").upper())
            names |= tree_sections(value)
    elif isinstance(tree, list):
        for value in tree:
            names |= tree_sections(value)
    return names


def render_input(tree: Mapping[str, Any], xmlspec: str | os.PathLike | None = None) -> str:
    """Render and validate a CP2K input tree; raise :class:`CP2KInputError` naming the problem.

    Validation uses the subset of the definition holding the sections the tree opens (every
    keyword of those sections kept), which loads in milliseconds instead of seconds.
    """
    spec = str(xmlspec_subset(xmlspec or bundled_xmlspec(), tree_sections(tree)))
    try:
        text = "\n".join(_generator(spec).line_iter(_drop_none(tree))) + "\n"
    except Exception as exc:  # the generator's errors share no base class
        raise CP2KInputError(f"CP2K input refused by the generator ({type(exc).__name__}): {exc}") from exc
    try:
        input_parser(spec).parse(io.StringIO(text))
    except Exception as exc:
        raise CP2KInputError(f"rendered CP2K input does not parse back ({type(exc).__name__}): {exc}") from exc
    return text
