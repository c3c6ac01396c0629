"""Extended XYZ and JSON sidecar of a QD model: byte-identical files for the same spec; read back without pymatgen."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
import numpy as np
from qdphonon import elements
from qdphonon.structures.model import QuantumDot, QuantumDotSpec, REGIONS, XYZ_PROPERTIES, system_name
from qdphonon.structures.neutrality import REMOVED_CS_RULE


def _f8(x: float) -> str:
    """Fixed float format of the files (8 decimals, no negative zero)."""
    return f"{float(x) + 0.0:.8f}".replace("-0.00000000", "0.00000000")


def _xyz_header(dot: QuantumDot) -> str:
    """Second line of the extended XYZ file."""
    L = _f8(dot.box_A)
    z = _f8(0.0)
    spec = dot.spec
    return (
        f'Lattice="{L} {z} {z} {z} {L} {z} {z} {z} {L}" Properties={XYZ_PROPERTIES} pbc="F F F" '
        f"system={system_name(spec)} charge={dot.charge} formula={dot.formula} "
        f'size="{spec.size[0]} {spec.size[1]} {spec.size[2]}" shell_layers={spec.shell_layers} '
        f"shell_metal={spec.shell_metal} lattice_A={_f8(spec.lattice_A)} vacuum_A={_f8(spec.vacuum_A)}"
    )


def _xyz_text(dot: QuantumDot) -> str:
    """Whole extended XYZ file."""
    lines = [str(dot.n_atoms), _xyz_header(dot)]
    for sym, (x, y, z), region, layer in zip(dot.symbols, dot.positions_A.tolist(), dot.regions, dot.layers):
        lines.append(f"{sym:<2s} {_f8(x):>16s} {_f8(y):>16s} {_f8(z):>16s} {region:<7s} {int(layer):d}")
    return "\n".join(lines) + "\n"


def structure_metadata(dot: QuantumDot) -> dict:
    """Content of the JSON sidecar (floats rounded so the text is reproducible)."""
    from qdphonon import __version__

    spec = dot.spec
    return {
        "system": system_name(spec),
        "formula": dot.formula,
        "counts_by_element": dot.counts_by_element,
        "counts_by_region": dot.counts_by_region,
        "n_atoms": dot.n_atoms,
        "size_octahedra": list(spec.size),
        "edge_nm": [round(x, 6) for x in spec.edge_nm],
        "shell_layers": spec.shell_layers,
        "shell_metal": spec.shell_metal if spec.shell_layers else None,
        "lattice_A": round(spec.lattice_A, 8),
        "vacuum_A": round(spec.vacuum_A, 8),
        "box_A": round(dot.box_A, 8),
        "charge": dot.charge,
        "n_removed_cs": spec.n_removed_cs,
        "removed_cs_rule": REMOVED_CS_RULE,
        "point_charge_dipole_eA": [round(float(x), 6) + 0.0 for x in dot.dipole_eA],
        "qdphonon_version": __version__,
    }


def sidecar_path(path_xyz: str | os.PathLike) -> Path:
    """The JSON sidecar next to an XYZ file: same path with a ``.json`` suffix."""
    return Path(path_xyz).with_suffix(".json")


def write_structure(dot: QuantumDot, path_xyz: str | os.PathLike) -> None:
    """Write ``path_xyz`` (extended XYZ) and its ``.json`` sidecar; identical dots give identical bytes."""
    path = Path(path_xyz)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(_xyz_text(dot))
    text = json.dumps(structure_metadata(dot), sort_keys=True, indent=2) + "\n"
    with open(sidecar_path(path), "w", encoding="utf-8", newline="\n") as fh:
        fh.write(text)


_HEADER_TOKEN = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)=(?:"([^"]*)"|(\S+))')


_HEADER_KEYS = (
    "Lattice", "Properties", "pbc", "system", "charge", "formula",
    "size", "shell_layers", "shell_metal", "lattice_A", "vacuum_A",
)  # fmt: skip


def _parse_header(line: str, where: str) -> dict[str, str]:
    """key=value pairs of the second XYZ line; ValueError (naming ``where``) on anything unexpected."""
    fields, pos = {}, 0
    text = line.rstrip()
    while pos < len(text):
        m = _HEADER_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"{where}: cannot parse header near {text[pos:pos + 30]!r}")
        fields[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
    missing = [k for k in _HEADER_KEYS if k not in fields]
    if missing:
        raise ValueError(f"{where}: header lacks {', '.join(missing)}")
    if fields["Properties"] != XYZ_PROPERTIES:
        raise ValueError(f"{where}: Properties={fields['Properties']} is not {XYZ_PROPERTIES}")
    return fields


def _parse_box(lattice: str, where: str) -> float:
    """Edge of the cubic box from a ``Lattice`` value; ValueError unless it is cubic and diagonal."""
    try:
        m = np.array([float(x) for x in lattice.split()]).reshape(3, 3)
    except ValueError:
        raise ValueError(f"{where}: Lattice must hold 9 numbers, got {lattice!r}") from None
    box = m[0, 0]
    if not np.allclose(m, box * np.eye(3), rtol=0, atol=1e-8) or box <= 0:
        raise ValueError(f"{where}: Lattice is not a cubic diagonal box: {lattice!r}")
    return float(box)


def _parse_atom(line: str, where: str) -> tuple[str, list[float], str, int]:
    """(symbol, [x, y, z], region, layer) of one atom line; ValueError naming ``where``."""
    parts = line.split()
    if len(parts) != 6:
        raise ValueError(f"{where}: expected 6 columns (species x y z region layer), got {len(parts)}")
    sym, region = parts[0], parts[4]
    if sym not in elements.ELEMENTS:
        raise ValueError(f"{where}: unknown species {sym!r}")
    if region not in REGIONS:
        raise ValueError(f"{where}: unknown region {region!r}")
    try:
        xyz = [float(v) for v in parts[1:4]]
        layer = int(parts[5])
    except ValueError:
        raise ValueError(f"{where}: bad number in {line.strip()!r}") from None
    if not all(np.isfinite(xyz)) or layer < 0:
        raise ValueError(f"{where}: bad position or layer in {line.strip()!r}")
    return sym, xyz, region, layer


def read_structure(path_xyz: str | os.PathLike) -> QuantumDot:
    """Read an XYZ file written by :func:`write_structure` (no pymatgen, no ase).

    Only that format is accepted; anything else raises ValueError naming the
    file and the line. The header must agree with the atoms (system name,
    formula, charge).
    """
    path = Path(path_xyz)
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines:
        raise ValueError(f"{path}: line 1: empty file")
    try:
        n_atoms = int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}: line 1: expected the atom count, got {lines[0].strip()!r}") from None
    if n_atoms < 1:
        raise ValueError(f"{path}: line 1: atom count must be >= 1, got {n_atoms}")
    if len(lines) < 2:
        raise ValueError(f"{path}: line 2: missing header")
    header = _parse_header(lines[1], f"{path}: line 2")
    box = _parse_box(header["Lattice"], f"{path}: line 2")
    try:
        spec = QuantumDotSpec(
            size=tuple(int(x) for x in header["size"].split()),
            shell_layers=int(header["shell_layers"]),
            shell_metal=header["shell_metal"],
            lattice_A=float(header["lattice_A"]),
            vacuum_A=float(header["vacuum_A"]),
        )
    except ValueError as exc:
        raise ValueError(f"{path}: line 2: bad spec in header ({exc})") from None
    body = lines[2 : 2 + n_atoms]
    if len(body) < n_atoms:
        raise ValueError(f"{path}: line {len(lines) + 1}: expected {n_atoms} atom lines, file ends after {len(body)}")
    extra = [i for i, text in enumerate(lines[2 + n_atoms :], start=3 + n_atoms) if text.strip()]
    if extra:
        raise ValueError(f"{path}: line {extra[0]}: unexpected content after {n_atoms} atoms")
    atoms = [_parse_atom(text, f"{path}: line {i}") for i, text in enumerate(body, start=3)]
    dot = QuantumDot(
        spec=spec,
        symbols=[a[0] for a in atoms],
        positions_A=np.array([a[1] for a in atoms], dtype=float),
        regions=[a[2] for a in atoms],
        layers=[a[3] for a in atoms],
        box_A=box,
    )
    for key, value in (("system", dot.name), ("formula", dot.formula), ("charge", str(dot.charge))):
        if header[key] != value:
            raise ValueError(f"{path}: line 2: header {key}={header[key]} but the atoms give {value}")
    return dot
