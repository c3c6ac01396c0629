"""CP2K inputs for QD relaxation and AIMD, built as Python dicts and rendered with cp2k-input-tools.

Two levels of theory (docs/physics.md §3):

``xtb``
    GFN1-xTB. Cheap: it exercises the whole machinery on real CP2K output in tests and
    smoke runs, but it badly underestimates the gap of these clusters (Cs4PbBr6: 1.55 eV
    relaxed vs 3.27 eV with PBE). Not for physics. SCF by diagonalisation (OT gives no
    LUMO for xTB), ``SCF_GUESS MOPAC``, direct-P mixing with alpha 0.1 and MAX_DIIS 10.
``pbe``
    PBE, DZVP-MOLOPT-SR-GTH basis, GTH-PBE pseudopotentials (Cs q9, Pb q4, Br q7, Ca and Sr q10;
    per element in :mod:`qdphonon.elements`),
    non-periodic wavelet Poisson solver, 250/40 Ry cutoffs, OT (DIIS, FULL_SINGLE_INVERSE,
    OUTER_SCF, EPS_SCF 1e-5 with ASPC order 3) with the LUMO
    from the MO_CUBES print (``WRITE_CUBE F``, ``EPS_LUMO`` 1e-4), XC smoothing. The physics
    of the study.

Both levels print the frontier orbital eigenvalues at every MD step with the ``&MO`` print
key (``&EACH MD 1``, ``QS_SCF 0``, one appended ``*.MOLog`` file), restricted by
``MO_INDEX_RANGE`` to a window around HOMO (orbital ``N_occ``) and LUMO (``N_occ + 1``),
so the parser takes band edges by orbital index, which also holds with smearing.

Smearing is never switched on automatically: ``smearing_K`` (an electronic temperature
in K, Fermi-Dirac) is an explicit, recorded setting that the caller passes.

Every generated text is validated twice against the input definition of the CP2K that
will run it (``cp2k --xml``, cached per version; the definition bundled with
cp2k-input-tools as fall-back): once by the generator, which rejects unknown sections
and keywords, and once by parsing the rendered text back, which catches wrong value
types (``STEPS many`` renders, but does not parse).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
from typing import Any, Mapping, Sequence

from qdphonon import elements, settings
from qdphonon.run.files import MD_PROJECT, MO_FILENAME, RELAX_PROJECT



LEVELS = ("xtb", "pbe")


RUN_TYPES = ("MD", "GEO_OPT", "ENERGY_FORCE")


EPS_SCF = {"xtb": 1e-6, "pbe": 1e-5}
"""EPS_SCF of each level when the setting is null (bench/RESULTS.md: at PBE with OT and ASPC, 1e-5
gives the gaps of 1e-6 within 0.2 meV at 8 % less cost per step)."""

PBE_CUTOFF_RY = 250.0
PBE_REL_CUTOFF_RY = 40.0
"""Plane-wave cutoffs of the pbe level (bench/RESULTS.md: with 5 A of vacuum the gap is within 3.4 meV,
and its fluctuations within 0.4 %, of a 400 Ry / 7 A / EPS_SCF 1e-8 reference; 200 Ry also passes
the gap criteria but its forces were not checked)."""

PBE_PRECONDITIONER = "FULL_SINGLE_INVERSE"
"""OT preconditioner of the pbe level: no diagonalisation, so it stays cheap for large dots."""

MO_WINDOW = 2

RIGID_MOTION_TOL_AU = 1e-10
"""``COMVEL_TOL`` and ``ANGVEL_TOL`` of an isolated dot's MD (CP2K's unit for both: bohr per
atomic time unit). CP2K removes the centre-of-mass velocity and the rigid rotation at every
step where they exceed these, so tiny values keep them at zero throughout the run (a dot with no
rotation removed put 32.5 % of its kinetic energy into rigid rotation at PBE, docs/physics.md
§3.6). Together with ``ANGVEL_ZERO`` at the start; both are ignored by CP2K for periodic cells."""

SINGLE_POINT_MO_WINDOW = 8
"""Levels printed on each side of the gap by a single point (``ENERGY_FORCE``): enough to see a
degenerate band edge whole (the harmonic route averages its manifold; docs/physics.md §5.3)."""
"""Orbitals printed below the HOMO and above the LUMO in the MOLog (beyond the two edges)."""


class CP2KInputError(ValueError):
    """A generated CP2K input that the CP2K input definition refuses."""


@dataclasses.dataclass(frozen=True)
class MDSettings:
    """NVT AIMD settings.

    temperature_K: thermostat and initial-velocity temperature (T_md).
    timestep_fs: MD time step.
    steps: number of MD steps after step 0.
    thermostat_timecon_fs: CSVR time constant.
    trajectory_every_steps: stride of the positions and velocities prints (band edges and
        energies are printed every step regardless).
    seed: CP2K's GLOBAL SEED; replicas differ by it (initial velocities, CSVR noise).
    trajectory_format: ``dcd`` (binary, ~5x smaller, read at memory speed) or ``xyz``.

    Defaults are the schema's (:mod:`qdphonon.settings`): one default per setting.
    """

    temperature_K: float = settings.default("md.temperature_K")
    timestep_fs: float = settings.default("md.timestep_fs")
    steps: int = settings.default("md.steps")
    thermostat_timecon_fs: float = settings.default("md.thermostat_timecon_fs")
    trajectory_every_steps: int = settings.default("md.trajectory_every_steps")
    seed: int = settings.default("md.seed")
    trajectory_format: str = settings.default("md.trajectory_format")


@dataclasses.dataclass(frozen=True)
class SCFSettings:
    """SCF settings shared by relaxation and MD.

    eps_scf: SCF convergence threshold (CP2K units); None: the level's value (:data:`EPS_SCF`).
    max_scf: inner SCF iterations.
    smearing_K: Fermi-Dirac electronic temperature in K, or None for integer occupations.
        Explicit and recorded; it changes the frontier occupations.
    added_mos: unoccupied orbitals computed (diagonalisation) so the LUMO exists.
    """

    eps_scf: float | None = settings.default("scf.eps_scf")
    max_scf: int = settings.default("scf.max_scf")
    smearing_K: float | None = settings.default("scf.smearing_K")
    added_mos: int = 10


def walltime_hms(walltime_s: float) -> str:
    """CP2K's ``WALLTIME`` value (HH:MM:SS) for a limit in seconds (at least 1 s)."""
    s = max(1, int(walltime_s))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def valence_electron_count(symbols: Sequence[str], level: str) -> int:
    """Number of valence electrons of a neutral dot at a level of theory (the element table's)."""
    _check_level(level)
    return sum(elements.valence_electrons(s, level) for s in symbols)


def homo_index(symbols: Sequence[str], level: str) -> int:
    """1-based index of the HOMO (= number of doubly occupied orbitals) of the neutral closed-shell dot."""
    n_el = valence_electron_count(symbols, level)
    if n_el % 2:
        raise ValueError(f"odd electron count {n_el} at level {level!r}: not a closed-shell neutral dot")
    return n_el // 2


def _check_level(level: str) -> str:
    if level not in LEVELS:
        raise ValueError(f"unknown level of theory {level!r}; expected one of {', '.join(LEVELS)}")
    return level


def _kinds(symbols: Sequence[str], level: str) -> list[dict[str, Any]]:
    kinds = []
    for element in sorted(set(symbols)):
        kind: dict[str, Any] = {"_": element, "element": element}
        if level == "pbe":
            entry = elements.element(element)
            kind["basis_set"] = entry.pbe_basis
            kind["potential"] = entry.gth_potential
        kinds.append(kind)
    return kinds


def _coord_lines(symbols: Sequence[str], positions_A: Sequence[Sequence[float]]) -> list[str]:
    return [f"{s} {x:.8f} {y:.8f} {z:.8f}" for s, (x, y, z) in zip(symbols, positions_A)]


def _dft_section(symbols: Sequence[str], level: str, scf: SCFSettings, run_type: str) -> dict[str, Any]:
    n_homo = homo_index(symbols, level)
    eps_scf = EPS_SCF[level] if scf.eps_scf is None else scf.eps_scf
    dft: dict[str, Any] = {"charge": 0, "multiplicity": 1}
    if level == "xtb":
        dft["qs"] = {"method": "XTB", "xtb": {"do_ewald": False}}
        dft["poisson"] = {"periodic": "NONE", "psolver": "MT"}
        dft["scf"] = {
            "scf_guess": "MOPAC",
            "eps_scf": eps_scf,
            "max_scf": scf.max_scf,
            "max_diis": 10,
            "added_mos": scf.added_mos,
            "diagonalization": {"_": True, "algorithm": "STANDARD"},
            "mixing": {"_": True, "method": "DIRECT_P_MIXING", "alpha": 0.1},
        }
        if scf.smearing_K is not None:
            dft["scf"]["smear"] = {"_": True, "method": "FERMI_DIRAC", "electronic_temperature": scf.smearing_K}
    else:
        dft["basis_set_file_name"] = "BASIS_MOLOPT"
        dft["potential_file_name"] = "GTH_POTENTIALS"
        dft["mgrid"] = {"cutoff": PBE_CUTOFF_RY, "rel_cutoff": PBE_REL_CUTOFF_RY, "ngrids": 4}
        dft["poisson"] = {"periodic": "NONE", "psolver": "WAVELET"}
        dft["qs"] = {"eps_default": 1e-10, "extrapolation": "ASPC", "extrapolation_order": 3}
        dft["xc"] = {
            "xc_functional": {"_": "PBE"},
            "xc_grid": {"xc_deriv": "NN10_SMOOTH", "xc_smooth_rho": "NN10"},
        }
        if scf.smearing_K is not None:
            raise ValueError("smearing with the pbe level (OT) is not supported; use diagonalisation via overrides")
        dft["scf"] = {
            "scf_guess": "ATOMIC",
            "eps_scf": eps_scf,
            "max_scf": min(scf.max_scf, 50),
            "ot": {"_": True, "minimizer": "DIIS", "preconditioner": PBE_PRECONDITIONER},
            "outer_scf": {"_": True, "eps_scf": eps_scf, "max_scf": 20},
        }
    if run_type == "MD":
        mo_range = [max(1, n_homo - MO_WINDOW), n_homo + 1 + MO_WINDOW]
        dft["print"] = {
            "mo": {
                "_": "ON",
                "energies": True,
                "occupation_numbers": True,
                "ndigits": 8,
                "filename": MO_FILENAME,
                "mo_index_range": mo_range,
                "common_iteration_levels": 1,
                "each": {"md": 1, "qs_scf": 0},
            }
        }
        if level == "pbe":
            dft["print"]["mo_cubes"] = {
                "_": "ON",
                "write_cube": False,
                "nhomo": 1,
                "nlumo": 1,
                "each": {"md": 1},
            }
            dft["scf"]["eps_lumo"] = 1e-4
            dft["print"]["mo"]["mo_index_range"] = [max(1, n_homo - MO_WINDOW), n_homo]
    if run_type == "ENERGY_FORCE":
        dft["print"] = _single_point_prints(n_homo, level)
        if level == "pbe":
            dft["scf"]["eps_lumo"] = 1e-4
    return dft


def _single_point_prints(n_homo: int, level: str) -> dict[str, Any]:
    """Band edges of a single point: a MOLog window of ``SINGLE_POINT_MO_WINDOW`` levels each side of the
    gap (xtb, diagonalisation); with OT (pbe) the occupied part there and the unoccupied levels from the
    ``MO_CUBES`` eigenvalue print of the main output."""
    w = SINGLE_POINT_MO_WINDOW
    prints: dict[str, Any] = {"mo": {"_": "ON", "energies": True, "occupation_numbers": True, "ndigits": 8,
                                     "filename": "mo", "mo_index_range": [max(1, n_homo - w + 1), n_homo + w],
                                     "each": {"qs_scf": 0}}}
    if level == "pbe":
        prints["mo"]["mo_index_range"] = [max(1, n_homo - w + 1), n_homo]
        prints["mo_cubes"] = {"_": "ON", "write_cube": False, "nhomo": w, "nlumo": w}
    return prints


def cp2k_input_tree(
    symbols: Sequence[str],
    positions_A: Sequence[Sequence[float]],
    box_A: float,
    *,
    level: str,
    run_type: str = "MD",
    project: str | None = None,
    md: MDSettings = MDSettings(),
    scf: SCFSettings = SCFSettings(),
    walltime_s: int | None = None,
    geo_opt_max_iter: int = 200,
    overrides: Mapping[str, Any] | None = None,
    regions: Sequence[str] | None = None,
    localisation_every_steps: int | None = None,
) -> dict[str, Any]:
    """The CP2K input of a relaxation (``GEO_OPT``), NVT AIMD (``MD``) or single point (``ENERGY_FORCE``:
    forces to ``{project}-forces``, band edges as in :func:`_single_point_prints`) of one dot, as a dict.

    Positions in Angstrom, centred by CP2K in a cubic non-periodic box of edge ``box_A``
    (``CENTER_COORDINATES T``). ``walltime_s`` sets CP2K's own ``WALLTIME`` so a job ends
    cleanly with a restart file before a scheduler kills it (continuations: ``engines``). ``overrides`` (CP2K keyword
    tree, case-insensitive keys) is merged last, so a user can change any keyword.
    With ``regions`` (one label per atom) and ``localisation_every_steps``, an MD input also prints
    the frontier orbitals' weight on every region (:mod:`qdphonon.cp2k.localisation`).
    """
    _check_level(level)
    if run_type not in RUN_TYPES:
        raise ValueError(f"unknown run type {run_type!r}; expected one of {', '.join(RUN_TYPES)}")
    if len(symbols) != len(positions_A):
        raise ValueError(f"{len(symbols)} symbols but {len(positions_A)} positions")
    project = project or {"MD": MD_PROJECT, "GEO_OPT": RELAX_PROJECT}.get(run_type, "sp")
    glob: dict[str, Any] = {"project_name": project, "run_type": run_type, "print_level": "MEDIUM", "seed": md.seed}
    if walltime_s is not None:
        glob["walltime"] = walltime_hms(walltime_s)
    tree: dict[str, Any] = {
        "global": glob,
        "force_eval": {
            "method": "QS",
            "dft": _dft_section(symbols, level, scf, run_type),
            "subsys": {
                "cell": {"abc": [float(box_A)] * 3, "periodic": "NONE"},
                "coord": {"*": _coord_lines(symbols, positions_A)},
                "topology": {"center_coordinates": {"_": True}},
                "kind": _kinds(symbols, level),
            },
        },
    }
    if run_type == "MD" and regions is not None and localisation_every_steps:
        from qdphonon.cp2k.localisation import localisation_print

        if len(regions) != len(symbols):
            raise ValueError(f"{len(regions)} region labels for {len(symbols)} atoms")
        dft_print = tree["force_eval"]["dft"].setdefault("print", {})
        dft_print["pdos"] = localisation_print(regions, localisation_every_steps)
    if run_type == "MD":
        tree["motion"] = {
            "md": {
                "ensemble": "NVT",
                "steps": int(md.steps),
                "timestep": float(md.timestep_fs),
                "temperature": float(md.temperature_K),
                "angvel_zero": True,
                "angvel_tol": RIGID_MOTION_TOL_AU,
                "comvel_tol": RIGID_MOTION_TOL_AU,
                "thermostat": {"type": "CSVR", "region": "GLOBAL", "csvr": {"timecon": float(md.thermostat_timecon_fs)}},
            },
            "print": {
                "trajectory": {"_": "ON", "format": md.trajectory_format.upper(),
                               "each": {"md": int(md.trajectory_every_steps)}},
                "velocities": {"_": "ON", "format": md.trajectory_format.upper(),
                               "each": {"md": int(md.trajectory_every_steps)}},
                "restart": {"_": "ON", "backup_copies": 0, "each": {"md": 1}},
                "restart_history": {"_": "OFF"},
            },
        }
    elif run_type == "ENERGY_FORCE":
        tree["force_eval"]["print"] = {"forces": {"_": "ON", "filename": "forces", "ndigits": 10}}
    else:
        tree["motion"] = {
            "geo_opt": {"optimizer": "LBFGS", "max_iter": int(geo_opt_max_iter)},
            "print": {
                "trajectory": {"_": "ON", "format": "XYZ"},
                "restart": {"_": "ON", "backup_copies": 0},
                "restart_history": {"_": "OFF"},
            },
        }
    if overrides:
        tree = merge_overrides(tree, overrides)
    return tree


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge ``overrides`` into ``base`` (keys case-insensitive; a ``None`` value deletes the key)."""
    out = copy.deepcopy(dict(base))
    lower = {k.lower(): k for k in out}
    for key, value in overrides.items():
        target = lower.get(key.lower(), key.lower())
        if value is None:
            out.pop(target, None)
        elif isinstance(value, Mapping) and isinstance(out.get(target), Mapping):
            out[target] = merge_overrides(out[target], value)
        else:
            out[target] = copy.deepcopy(value)
    return out


def input_digest(text: str) -> str:
    """SHA-256 of a rendered input (provenance)."""
    return hashlib.sha256(text.encode()).hexdigest()
