"""Writers of CP2K 2023.1's file formats for the mock engine: XYZ frames, ``.ener``, MOLog, main output."""

from __future__ import annotations

from typing import Sequence
import numpy as np
from qdphonon import units
from qdphonon.cp2k.readback import MDInput
from qdphonon.metadata import SYNTHETIC_LABEL


CP2K_HARTREE_eV = 27.21138386
"""The Hartree-to-eV factor CP2K 2023.1 prints its MO eigenvalues with (CODATA 2006)."""


def format_fixed(values: np.ndarray, width: int, decimals: int) -> np.ndarray:
    """Fixed-point text of every value (``'%{width}.{decimals}f'``), vectorised: uint8 array of shape
    ``values.shape + (width,)``. Rounds half away from zero after scaling (a last-digit difference
    from Python's exact rounding is possible in rare ties)."""
    x = np.asarray(values, dtype=float)
    scaled = np.rint(np.abs(x) * 10.0**decimals)
    if not np.all(np.isfinite(scaled)) or (scaled.size and scaled.max() >= 2.0**62):
        raise ValueError("format_fixed: value out of range")
    v = scaled.astype(np.int64)
    out = np.full(x.shape + (width,), ord(" "), dtype=np.uint8)
    for j in range(decimals):
        out[..., width - 1 - j] = 48 + v % 10
        v //= 10
    point = width - 1 - decimals
    out[..., point] = ord(".")
    ndig = np.ones(x.shape, dtype=np.int64)
    out[..., point - 1] = 48 + v % 10
    v //= 10
    k = 1
    while np.any(v > 0):
        col = point - 1 - k
        if col < 0:
            raise ValueError(f"format_fixed: a value needs more than {width} characters")
        mask = v > 0
        out[..., col] = np.where(mask, 48 + v % 10, out[..., col])
        ndig = np.where(mask, k + 1, ndig)
        v //= 10
        k += 1
    neg = np.signbit(x)
    if np.any(neg):
        flat = out.reshape(-1, width)
        idx = np.flatnonzero(neg.ravel())
        sign_col = point - 1 - ndig.ravel()[idx]
        if np.any(sign_col < 0):
            raise ValueError(f"format_fixed: a value needs more than {width} characters")
        flat[idx, sign_col] = ord("-")
    return out


def xyz_frames_bytes(symbols: Sequence[str], steps: Sequence[int], times_fs: Sequence[float], energies_Ha: Sequence[float],
                     values: np.ndarray) -> bytes:  # fmt: skip
    """CP2K 2023.1 XYZ trajectory frames: ``%8d`` atom count, `` i = %8d, time = %12.3f, E = %20.10f``,
    then `` %-2s %20.10f%20.10f%20.10f`` per atom."""
    n = len(symbols)
    body = np.empty((len(steps), n, 65), dtype=np.uint8)
    prefix = np.frombuffer("".join(f" {s:<2s} " for s in symbols).encode(), dtype=np.uint8).reshape(n, 4)
    body[:, :, :4] = prefix
    body[:, :, 4:64] = format_fixed(values, 20, 10).reshape(len(steps), n, 60)
    body[:, :, 64] = ord("\n")
    parts = []
    for f, (step, t, e) in enumerate(zip(steps, times_fs, energies_Ha)):
        parts.append(b"%8d\n i = %8d, time = %12.3f, E = %20.10f\n" % (n, step, t, e))
        parts.append(body[f].tobytes())
    return b"".join(parts)


ENER_HEADER = ("#     Step Nr.          Time[fs]        Kin.[a.u.]          Temp[K]            Pot.[a.u.]"
               "        Cons Qty[a.u.]        UsedTime[s]")  # fmt: skip


def fortran_e(x: float, digits: int = 12) -> str:
    """Fortran ``E`` format with a leading ``0.`` (``-0.264604161461E+02``), as CP2K prints MD summaries."""
    if x == 0 or not np.isfinite(x):
        return f"0.{'0' * digits}E+00" if x == 0 else str(x)
    exp = int(np.floor(np.log10(abs(x)))) + 1
    mant = round(abs(x) / 10.0**exp, digits)
    if mant >= 1.0:
        mant, exp = mant / 10.0, exp + 1
    return f"{'-' if x < 0 else ''}0.{int(round(mant * 10**digits)):0{digits}d}E{exp:+03d}"


def _right(label: str, value: str, width: int = 80) -> str:
    return label + value.rjust(width - len(label))


def _two(label: str, inst: str, avg: str) -> str:
    return label + inst.rjust(59 - len(label)) + avg.rjust(21)


def molog_bytes(index: np.ndarray, energies_eV: np.ndarray, occupations: np.ndarray, n_electrons: int,
                fermi_eV: np.ndarray, gap_eV: np.ndarray | None) -> bytes:  # fmt: skip
    """CP2K 2023.1 MOLog blocks (one per row of ``energies_eV``: steps x orbitals)."""
    rows = "".join(f" MO|{int(i):7d}%23.8f%23.8f%23.8f\n" for i in index)
    template = (
        "\n MO| EIGENVALUES AND OCCUPATION NUMBERS\n MO|\n"
        " MO|  Index      Eigenvalue [a.u.]        Eigenvalue [eV]             Occupation\n"
        + rows
        + f" MO| Sum:{float(n_electrons):71.8f}\n"
        + " MO| E(Fermi):%20.8f a.u.%18.8f eV\n"
        + (" MO| Band gap:%20.8f a.u.%18.8f eV\n" if gap_eV is not None else "")
        + "\n"
    )
    au = energies_eV / CP2K_HARTREE_eV
    parts = []
    for s in range(energies_eV.shape[0]):
        vals = np.empty((len(index), 3))
        vals[:, 0], vals[:, 1], vals[:, 2] = au[s], energies_eV[s], occupations[s]
        extra = [fermi_eV[s] / CP2K_HARTREE_eV, fermi_eV[s]]
        if gap_eV is not None:
            extra += [gap_eV[s] / CP2K_HARTREE_eV, gap_eV[s]]
        parts.append(template % (*vals.ravel().tolist(), *extra))
    return "".join(parts).encode()


def mock_output_text(md: MDInput, *, n_electrons: int, n_mo: int, potential_Ha: np.ndarray, kinetic_Ha: np.ndarray,
                     temperature_K: np.ndarray, vbm_eV: np.ndarray, cbm_eV: np.ndarray) -> str:  # fmt: skip
    """A minimal CP2K 2023.1 main output: what :mod:`qdphonon.parsers` reads, step by step, labelled synthetic."""
    head = [
        "# " + SYNTHETIC_LABEL,
        " **** **** ******  **  PROGRAM STARTED AT               2000-01-01 00:00:00.000",
        _right(" CP2K| version string:", "CP2K version mock"),
        " CP2K| qdphonon mock engine: no CP2K was run; files follow CP2K 2023.1 formats",
        _right(" GLOBAL| Project name", md.project),
        _right(" GLOBAL| Run type", "MD"),
    ]
    if md.smearing_K is not None:
        head += [_right("                        Smear method:", "FERMI_DIRAC"),
                 _right("                        Electronic temperature [K]:", f"{md.smearing_K:.1f}")]  # fmt: skip
    head += [
        " MD_PAR| Molecular dynamics protocol (MD input parameters)",
        _right(" MD_PAR| Ensemble type", "NVT"),
        _right(" MD_PAR| Number of time steps", str(md.steps)),
        _right(" MD_PAR| Time step [fs]", f"{md.timestep_fs:.6f}"),
        _right(" MD_PAR| Temperature [K]", f"{md.temperature_K:.6f}"),
        "",
    ]
    evaluation = "\n".join([
        _right(" Number of electrons:", str(n_electrons)),
        _right(" Number of occupied orbitals:", str(n_electrons // 2)),
        _right(" Number of molecular orbitals:", str(n_mo)),
        "",
        " SCF WAVEFUNCTION OPTIMIZATION",
        "",
        "  *** SCF run converged in     1 steps ***",
        "",
    ]) + "\n"  # fmt: skip
    lines = ["\n".join(head) + "\n"]
    cons = potential_Ha + kinetic_Ha
    n = len(potential_Ha)
    for step in range(n):
        block = [evaluation]
        if md.smearing_K is not None:
            mid = 0.5 * (vbm_eV[step] + cbm_eV[step]) / units.HARTREE_eV
            block.append(_right("  Fermi energy:", f"{mid:.14f}") + "\n\n")
        if md.lumo_in_output:
            gap = cbm_eV[step] - vbm_eV[step]
            block.append(f" Fermi Energy [eV] : {vbm_eV[step]:11.6f}\n\n HOMO - LUMO gap [eV] : {gap:10.6f}\n\n")
        block.append(_right(" ENERGY| Total FORCE_EVAL ( QS ) energy [a.u.]:", f"{potential_Ha[step]:.15f}") + "\n\n")
        if step == 0:
            block.append("\n".join([
                " MD_INI| MD initialization",
                _right(" MD_INI| Potential energy [hartree]", fortran_e(potential_Ha[0])),
                _right(" MD_INI| Kinetic energy [hartree]", fortran_e(kinetic_Ha[0])),
                _right(" MD_INI| Temperature [K]", f"{temperature_K[0]:.6f}"),
            ]) + "\n\n")  # fmt: skip
        else:
            block.append("\n".join([
                " MD| " + "*" * 75,
                _right(" MD| Step number", str(step)),
                _right(" MD| Time [fs]", f"{step * md.timestep_fs:.6f}"),
                _right(" MD| Conserved quantity [hartree]", fortran_e(cons[step])),
                " MD| " + "*" * 75,
            ]) + "\n\n")  # fmt: skip
        lines.append("".join(block))
    lines.append(_right(" **** **** ******  **  PROGRAM ENDED AT", SYNTHETIC_LABEL) + "\n")
    return "".join(lines)
