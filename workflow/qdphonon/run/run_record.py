"""``run.json`` as typed records: :class:`RunRecord` (a complete MD run) and :class:`SegmentRecord` (one
CP2K segment in it), the only spelling of their keys.

:func:`qdphonon.metadata.run_record` builds the record when an engine (``cp2k`` or ``mock``) completes
a run; :func:`read_run_record` reads one back for ``qdphonon status`` and ``qdphonon check``,
refusing an unknown, missing or mistyped key with the file and the key named. ``segments.json``
(the engine's live state) is not typed here.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from qdphonon.typed_records import TypedRecord, described

CP2K, MOCK = ("cp2k",), ("mock",)


# fmt: off
@dataclass(frozen=True)
class SegmentRecord(TypedRecord):
    """One CP2K segment (one launch, from its start step to where it stopped) as run.json records it."""

    RECORD_NAME = "run.json segment"

    index: int = described("segment number, 0 for the first launch")
    input: str = described("the segment's CP2K input (seg000.inp, ...) in the run directory")
    output: str | None = described("the segment's CP2K main output (seg000.out, ...)")
    start_step: int | None = described("MD step the segment started from")
    end_step: int | None = described("last MD step the segment completed")
    wall_s: float | None = described("wall time of the segment", "s")
    exit_status: int | None = described("exit status of the launched process")
    signal: int | str | None = described("signal that ended the process (null: none)")
    ended: str = described("how the segment ended (qdphonon.run.layout.SegmentEnd)")
    note: str | None = described("why it ended so, in words (null: nothing to add)")
    command: str | None = described("the launch line (MPI launcher, CP2K binary, input, output)")
    started_at: str | None = described("start time, UTC, ISO 8601")
    restart_file: str | None = described("CP2K restart file the segment continued from (null: the first)")


@dataclass(frozen=True)
class RunRecord(TypedRecord):
    """A complete MD run (``run.json``); written only when the last MD step equals the input's STEPS."""

    RECORD_NAME = "run.json"
    ROUTE_FIELD = "engine"

    engine: str = described("engine that ran it: cp2k or mock (no CP2K)")
    level: str | None = described("electronic-structure level of the data (mock for the mock engine)")
    input_level: str | None = described("level the input was generated for (its first line)")
    cp2k_version: str = described("CP2K version from the output banner (mock: mock; unknown if unread)")
    command: str | None = described("first segment's launch line")
    qdphonon_command: str = described("the qdphonon command line that ran the engine")
    qdphonon_version: str = described("qdphonon version")
    input: str = described("path of the MD input")
    input_sha256: str = described("SHA-256 of the MD input (a run directory belongs to one input)")
    run_dir: str = described("the run directory")
    project: str = described("CP2K project name (prefix of its files)")
    files: dict = described("CP2K's files of the run: positions, velocities, energies, molog, restart, wfn")
    steps_requested: int | None = described("MD steps the input asks for")
    total_steps: int | None = described("last MD step written (the last segment's end)")
    timestep_fs: float | None = described("MD time step", "fs")
    md_temperature_K: float | None = described("thermostat temperature T_md", "K")
    seed: int | None = described("random seed of the initial velocities and thermostat")
    smearing_K: float | None = described("Fermi-Dirac electronic temperature (null: no smearing)", "K")
    segments: list = described("the segments, in order (SegmentRecord)")
    synthetic: bool = described("true for the mock engine (synthetic data)")
    completed_at: str = described("completion time, UTC, ISO 8601")
    note: str = described("what the mock's files are (synthetic label)", routes=MOCK)
    scf_unconverged_steps: list = described("MD steps whose SCF did not converge")
    on_scf_failure: str = described("SCF policy the engine ran with (schema scf.on_failure)", routes=CP2K)
    discarded_segments: int = described("segments set aside (killed before their first step)", routes=CP2K)
    recoveries: int = described("recoveries after a kill (segments.json lists them)", routes=CP2K)
    structure: str = described("the structure the mock moved", routes=MOCK)
    mock_params: dict = described("the mock model's parameters (schema mock.*)", routes=MOCK)
    mock_model: dict = described("the mock's known answer: per-oscillator lambda, gap mean and std, "
                                 "Gamma(300 K)", routes=MOCK)
    gap_coupling: dict | None = described("the mock's gap coupling per region: the attribution's known answer "
                                          "(qdphonon.engines.mock_gap)", routes=MOCK)
    localisation_model: dict | None = described("the mock's band-edge weight per region when it printed the "
                                                "localisation lists: the localise command's known answer "
                                                "(qdphonon.engines.mock_localisation); null without the print",
                                                routes=MOCK)
# fmt: on

SEGMENT_KEYS = tuple(SegmentRecord.field_info())
"""The keys of one segment in run.json (segments.json's segments carry more)."""


def build_run_record(fields: dict) -> dict:
    """run.json's object from its fields (segments reduced to :data:`SEGMENT_KEYS`), checked against the
    records (TypeError or ValueError naming the key)."""
    segments = [SegmentRecord(**{k: s.get(k) for k in SEGMENT_KEYS}).to_json() for s in fields.get("segments", [])]
    return RunRecord(**{**fields, "segments": segments}).to_json()


def read_run_record(path: str | os.PathLike) -> RunRecord | None:
    """The run.json at ``path`` (None when there is none); ValueError naming the file and the first
    unknown, missing or mistyped key (also of a segment)."""
    from qdphonon.run.layout import read_json

    data = read_json(path)
    if data is None:
        return None
    record = RunRecord.from_json(data, str(path))
    for i, seg in enumerate(record.segments):
        SegmentRecord.from_json(seg, f"{Path(path)}: segment {i}")
    return record
