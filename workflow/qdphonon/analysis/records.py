"""``linewidth.json`` as one typed record: :class:`LinewidthRecord`, the only spelling of its keys.

:mod:`qdphonon.analysis.system` (route ``md``) and :mod:`qdphonon.harmonic.report` (route
``harmonic``) fill it; :mod:`qdphonon.analysis.summary` reads it back and takes its columns from
the fields' ``summary`` declarations (:class:`Columns`). Adding a quantity is one field here (with
its description and unit, and ``summary=VALUE`` for a summary column). Nested objects (regions,
lineshape, convergence, ...) are described here and built by the modules named in the description;
the nested keys the summary reads are checked when it reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qdphonon.typed_records import TypedRecord, described

MD, HARMONIC = ("md",), ("harmonic",)


@dataclass(frozen=True)
class Columns:
    """How one field becomes ``summary.csv`` columns (read by :mod:`qdphonon.analysis.summary`).

    ``kind``: ``value`` (one column, the field's name), ``interval`` (``<stem>_lo_<unit>``,
    ``<stem>_hi_<unit>``), ``keys`` (nested keys -> columns), ``regions`` (per region, ``{name}`` in
    the column replaced by the region's name), ``size`` (nx, ny, nz), ``edges`` (x, y, z and mean
    edge). ``optional_keys``: nested keys a file may lack (blank column). ``structure``: the
    structure sidecar's value, when given, wins over the field's."""

    kind: str
    keys: tuple[tuple[str, str], ...] = ()
    optional_keys: tuple[str, ...] = ()
    structure: bool = False


VALUE = Columns("value")
INTERVAL = Columns("interval")


def column_names(name: str, spec: Columns) -> list[str]:
    """The summary columns of field ``name`` (region columns with ``{name}`` unfilled)."""
    if spec.kind == "value":
        return [name]
    if spec.kind == "interval":
        stem, unit = name.removesuffix("_interval").rsplit("_", 1)
        return [f"{stem}_lo_{unit}", f"{stem}_hi_{unit}"]
    if spec.kind == "size":
        return ["nx", "ny", "nz"]
    if spec.kind == "edges":
        return ["edge_x_nm", "edge_y_nm", "edge_z_nm", "edge_nm"]
    return [column for _, column in spec.keys]


def summary_columns() -> dict[str, list[str]]:
    """Field -> its summary columns, in the model's order (the summary's column order)."""
    return {name: column_names(name, meta["summary"]) for name, meta in LinewidthRecord.field_info().items()
            if meta["summary"] is not None}  # fmt: skip


# fmt: off
@dataclass(frozen=True)
class LinewidthRecord(TypedRecord):
    """One system's results (``linewidth.json``); intervals at ``confidence_level`` (docs/physics.md §4)."""

    RECORD_NAME = "linewidth.json"
    ROUTE_FIELD = "route"

    system: str = described("system name (results/analysis/<system>)", summary=VALUE)
    route: str = described("how lambda was obtained: md (gap fluctuations along MD) or harmonic (normal modes)",
                           summary=VALUE)
    lambda_meV: float = described("reorganisation energy lambda, replica mean (docs/physics.md §1.3)", "meV",
                                  summary=VALUE)
    lambda_meV_err: float | None = described("half width of lambda_meV_interval (null: no error estimate)", "meV",
                                             summary=VALUE)
    lambda_meV_interval: list | None = described("[lo, hi] interval of lambda at confidence_level", "meV",
                                                 routes=MD, summary=INTERVAL)
    fwhm_meV: float = described("classical linewidth Gamma(report_temperature_K) of Eq. 2 from lambda_meV", "meV",
                                summary=VALUE)
    fwhm_meV_err: float | None = described("half width of fwhm_meV_interval", "meV", summary=VALUE)
    fwhm_meV_interval: list | None = described("[lo, hi] interval of fwhm_meV", "meV", routes=MD, summary=INTERVAL)
    fwhm_quantum_meV: float | None = described("band-limited quantum Gaussian FWHM at report_temperature_K "
                                               "(Bose occupations, docs/physics.md §4.3)", "meV", summary=VALUE)
    fwhm_quantum_meV_err: float | None = described("half width of fwhm_quantum_meV_interval", "meV", summary=VALUE)
    fwhm_quantum_meV_interval: list | None = described("[lo, hi] interval of fwhm_quantum_meV", "meV", routes=MD)
    fwhm_lineshape_meV: float | None = described("FWHM of the cumulant lineshape at report_temperature_K", "meV",
                                                 summary=VALUE)
    report_temperature_K: float = described("temperature Gamma is reported at", "K", summary=VALUE)
    md_temperature_K: float | None = described("thermostat temperature T_md of the MD (null: harmonic route)", "K",
                                               summary=VALUE)
    temperature_source: str = described("what normalises lambda: velocities (internal kinetic temperature) or "
                                        "md_temperature (qdphonon.analysis.temperature)", routes=MD, summary=VALUE)
    normalisation_temperature_K: float | None = described("replica mean of the normalising temperature", "K", routes=MD,
                                                   summary=VALUE)
    normalisation_temperature_K_per_replica: list = described("normalising temperature of each replica", "K",
                                                              routes=MD)
    lambda_meV_with_md_temperature: float | None = described("lambda had every replica been divided by T_md "
                                                             "(for comparison)", "meV", routes=MD)
    confidence_level: float | None = described("probability content of every *_interval", routes=MD, summary=VALUE)
    error_method: str = described("replicas (Student-t over replicas), spectrum (chi^2 of one replica's "
                                  "spectrum) or none (harmonic)", summary=VALUE)
    error_note: str = described("what the error bars mean, in words")
    spectral_interval: dict | None = described("one replica: the chi^2 interval's method and effective degrees of "
                                               "freedom (qdphonon.analysis.spectral_interval); null otherwise",
                                               routes=MD)
    gap_mean_eV: float | None = described("mean band gap (LUMO - HOMO) over the production windows", "eV",
                                          summary=VALUE)
    gap_std_meV: float | None = described("standard deviation of the gap (harmonic: classical at 10 K, gap_std_note)",
                                   "meV", summary=VALUE)
    n_samples: int = described("gap samples analysed, all replicas", routes=MD)
    n_samples_per_replica: list = described("gap samples analysed per replica", routes=MD)
    duration_fs: float | None = described("production time analysed, summed over replicas", "fs", routes=MD,
                                          summary=VALUE)
    duration_fs_per_replica: list = described("production time analysed per replica", "fs", routes=MD)
    dt_fs_per_replica: list = described("sampling interval of each replica's band edges", "fs", routes=MD)
    discard_fs: float | None = described("equilibration dropped from the start of each replica", "fs", routes=MD)
    frequency_resolution_meV: float | None = described("spectral bin spacing (the coarsest replica's)", "meV")
    band_cutoff_meV: float | None = described("top of the phonon band for the quantum width and the lineshape "
                                              "(null: harmonic, every mode counts)", "meV", summary=VALUE)
    lambda_band_meV: float | None = described("lambda below band_cutoff_meV", "meV")
    lambda_above_band_meV: float | None = described("lambda above band_cutoff_meV (kept classically)", "meV",
                                                    summary=VALUE)
    lambda_above_band_fraction: float | None = described("lambda_above_band_meV / lambda_meV", routes=MD)
    lambda_above_regions_meV: float | None = described("lambda above the last region edge", "meV")
    n_replicas: int = described("independent MD replicas analysed", routes=MD, summary=VALUE)
    n_blocks: int | None = described("blocks of the single-replica block errors (null: replicas or refused)",
                                     routes=MD)
    blocks: dict | None = described("single replica: block estimates, refusals and plateau "
                                    "(qdphonon.analysis.uncertainty.block_errors); null with replicas", routes=MD)
    regions: list = described(
        "effective mode per region [lo_meV, hi_meV): S, hw_meV, lambda_meV, resolved, errors "
        "(qdphonon.analysis.spectrum.region_modes)", "meV",
        summary=Columns("regions", (("S", "S_{name}"), ("S_err", "S_{name}_err"), ("hw_meV", "hw_{name}_meV"),
                                    ("lambda_meV", "lambda_{name}_meV"), ("resolved", "resolved_{name}")),
                        optional_keys=("S_err",)))
    edge_lines: list = described("spectral lines straddling a region edge and the lambda crossing it", "meV",
                                 routes=MD)
    fwhm_vs_temperature: list = described("Gamma(T): classical, quantum and lineshape FWHM at each temperature",
                                          "meV")
    lineshape: dict = described(
        "cumulant lineshape at report_temperature_K (qdphonon.analysis.lineshape.Lineshape.summary)", "meV",
        summary=Columns("keys", (("gaussian_valid", "gaussian_valid"), ("zpl_weight", "zpl_weight"),
                                 ("stokes_shift_meV", "stokes_shift_meV"), ("dephasing_time_fs", "dephasing_time_fs"))))
    stationarity: list = described("per replica: block variances, trend and verdict of the stationarity check",
                                   routes=MD)
    kinetic_temperature_K: float | None = described("mean kinetic temperature of the internal motion (with "
                                                    "velocities)", "K", optional=True, routes=MD, summary=VALUE)
    kinetic_temperature_K_per_replica: list = described("mean kinetic temperature per velocity file", "K",
                                                        optional=True, routes=MD)
    kinetic_temperature_deviation: float | None = described("kinetic_temperature_K / T_md - 1", optional=True,
                                                            routes=MD)
    vdos_n_dof: float | None = described("degrees of freedom the vibrational DOS is normalised to", optional=True,
                                  routes=MD)
    rigid_motion_removed: bool = described("rigid translation and rotation removed from the velocities",
                                           optional=True, routes=MD)
    rigid_kinetic_fraction: float | None = described("share of the kinetic energy in rigid motion", optional=True,
                                                     routes=MD, summary=VALUE)
    holes: list = described("per replica: bridged holes in the band-edge time series", "fs", routes=MD)
    n_scf_unconverged_rows: int = described("band-edge rows from unconverged SCF steps", routes=MD)
    n_interpolated_steps: int = described("MD steps whose band edges were interpolated", routes=MD)
    convergence: dict = described(
        "running lambda and Gamma with length, and the length and replicas needed for the target "
        "(qdphonon.analysis.convergence)", "fs", routes=MD,
        summary=Columns("keys", (("production_length_needed_fs", "production_length_needed_fs"),
                                 ("replicas_needed", "replicas_needed"))))
    window: str = described("spectral window of the region sums (hann; harmonic: none)")
    synthetic: bool = described("true when any input is mock (synthetic) data", summary=VALUE)
    level: str | None = described("electronic-structure level (xtb, pbe; mock for synthetic data)", summary=VALUE)
    assumptions: list = described("the approximations behind the numbers, in words")
    inputs: dict = described("band-edge and velocity files analysed", routes=MD)
    formula: str = described("chemical formula (from the structure sidecar)", optional=True, routes=MD,
                             summary=Columns("value", structure=True))
    n_atoms: int = described("atoms in the dot", optional=True, routes=MD, summary=Columns("value", structure=True))
    size_octahedra: list = described("octahedra along x, y, z", optional=True, routes=MD,
                                     summary=Columns("size", structure=True))
    edge_nm: list | float = described("edge lengths along x, y, z", "nm", optional=True, routes=MD,
                                      summary=Columns("edges", structure=True))
    shell_layers: int | None = described("shell layers (0: bare dot)", optional=True, routes=MD,
                                         summary=Columns("value", structure=True))
    shell_metal: str | None = described("shell metal (null: bare dot)", optional=True, routes=MD,
                                        summary=Columns("value", structure=True))
    counts_by_region: dict = described("atoms per region (core, surface, shell)", optional=True, routes=MD,
                                       summary=Columns("keys", (("core", "n_core"), ("surface", "n_surface"),
                                                                ("shell", "n_shell")),
                                                       optional_keys=("core", "surface", "shell"), structure=True))
    warnings: list = described("the analysis' warning messages, in order (qualifiers: analysis.qualifiers)")
    gap_std_note: str = described("what gap_std_meV means on the harmonic route", routes=HARMONIC)
    main_mode: dict = described("the mode with the largest lambda_k: energy_meV, S, lambda_meV", "meV",
                                routes=HARMONIC)
    n_modes: int = described("vibrational modes kept (rigid and imaginary ones removed)", routes=HARMONIC)
    n_rigid_modes_removed: int = described("rigid translations and rotations projected out", routes=HARMONIC)
    n_imaginary_modes: int = described("imaginary modes (left out of lambda)", routes=HARMONIC)
    imaginary_mode_energies_meV: list = described("imaginary modes' energies (negative)", "meV", routes=HARMONIC)
    lowest_mode_meV: float | None = described("lowest real mode", "meV", routes=HARMONIC)
    highest_mode_meV: float | None = described("highest mode", "meV", routes=HARMONIC)
    degeneracy: dict = described("band-edge degeneracy at the reference geometry and how it was treated",
                                 routes=HARMONIC)
    max_residual_force_eV_A: float | None = described("largest force at the reference geometry", "eV/A",
                                                      routes=HARMONIC)
    displacement_step_A: float | None = described("finite-difference displacement", "A", routes=HARMONIC)
    hessian_relative_asymmetry: float | None = described("|H - H^T| / |H| before symmetrising", routes=HARMONIC)
    gap_gradient_rigid_fraction: float | None = described("share of the gap gradient along rigid motion (ideally 0)",
                                                   routes=HARMONIC)
    n_single_points: int = described("single points read (reference and displacements)", optional=True,
                                     routes=HARMONIC)
    n_scf_unconverged: int = described("single points whose SCF did not converge", optional=True, routes=HARMONIC)
    unconverged: list = described("names of the unconverged single points", optional=True, routes=HARMONIC)
    n_electrons: int | None = described("electrons of the reference single point", optional=True, routes=HARMONIC)
    symmetry: dict = described("point-group check of the displacements (qdphonon.harmonic.symmetry)",
                               optional=True, routes=HARMONIC)
    structure: str = described("relaxed structure the modes are of", optional=True, routes=HARMONIC)
    single_points: str = described("directory of the single points", optional=True, routes=HARMONIC)
# fmt: on


def read_linewidth(data: Any, source: str) -> LinewidthRecord:
    """A parsed linewidth.json as a :class:`LinewidthRecord`; ValueError naming ``source`` and the key
    (unknown, missing, mistyped, or a nested key the summary reads)."""
    record = LinewidthRecord.from_json(data, source)
    for name, meta in LinewidthRecord.field_info().items():
        spec, value = meta["summary"], getattr(record, name)
        if spec is None or spec.kind not in ("keys", "regions") or not value:
            continue
        for item in value if spec.kind == "regions" else [value]:
            if not isinstance(item, dict):
                raise ValueError(f"{source}: linewidth.json key {name}: {item!r} is not an object")
            for key, _ in spec.keys + ((("name", ""),) if spec.kind == "regions" else ()):
                if key not in item and key not in spec.optional_keys:
                    raise ValueError(f"{source}: linewidth.json key {name}.{key} missing")
    return record
