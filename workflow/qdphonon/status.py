"""Where a campaign stands: per system and replica, steps done of planned, how each segment ended,
seconds per MD step in the last segment, time left at that rate, and whether CP2K runs now; per
system on the harmonic route (``route: harmonic`` or ``both``), one row ``harmonic``: its
relaxation's segments, the single points done of planned and how many run now (their lock held).

Read-only: it looks at ``results/aimd/{system}/{replica}/`` (``segments.json``, ``run.json``
and the last line of CP2K's ``.ener`` file, named by :mod:`qdphonon.run.layout`), at
``results/harmonic/{system}/`` and at the campaign's config for what is planned. Cheap enough to
run every minute on a login node.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Mapping

from qdphonon.config import campaign_from_config
from qdphonon.parsers.energies import last_line_step
from qdphonon.run.lock import process_alive
from qdphonon.run.layout import MD_PROJECT, RECORD_FILE, STATE_FILE, SegmentEnd, read_json, run_files
from qdphonon.run.run_record import read_run_record


def segments_state(segments: list[dict[str, Any]], running: bool) -> str:
    """``running``, ``killed (engine gone)`` (the last segment says running, its process is gone),
    ``stopped (how the last one ended)`` or ``not started``."""
    last = segments[-1] if segments else None
    if running:
        return "running"
    if last is not None and last.get("ended") == SegmentEnd.RUNNING:
        return "killed (engine gone)"
    return f"stopped ({last.get('ended')})" if last is not None else "not started"


def replica_status(run_dir: Path, planned_steps: int, now_s: float | None = None) -> dict[str, Any]:
    """Status of one replica's run directory (see the module docstring for the fields)."""
    now_s = time.time() if now_s is None else now_s
    record = read_run_record(run_dir / RECORD_FILE) if run_dir.is_dir() else None
    state = read_json(run_dir / STATE_FILE) if run_dir.is_dir() else None
    segments = (state or {}).get("segments", [])
    files = run_files(str((state or {}).get("project") or MD_PROJECT))
    done = last_line_step(run_dir / files["energies"]) if state else None
    if record is not None:
        done = record.total_steps
    planned = int((state or {}).get("steps") or planned_steps)
    last = segments[-1] if segments else None
    running = bool(last and last.get("ended") == SegmentEnd.RUNNING and process_alive(last.get("pid")))
    s_per_step = None
    if last is not None and done is not None:
        start = int(last.get("start_step") or 0)
        end = done if running or last.get("end_step") is None else int(last["end_step"])
        wall = now_s - float(last["started_epoch"]) if running and last.get("started_epoch") is not None else last.get("wall_s")
        if wall and end > start:
            s_per_step = float(wall) / (end - start)
    left = max(0, planned - (done or 0))
    state_word = "complete" if record is not None else segments_state(segments, running)
    return {
        "run_dir": str(run_dir),
        "state": state_word,
        "complete": record is not None,
        "running": running,
        "steps_done": done or 0,
        "steps_planned": planned,
        "segments": [str(s.get("ended")) for s in segments],
        "seconds_per_step": s_per_step,
        "seconds_left": None if s_per_step is None else s_per_step * left,
        "engine": record.engine if record is not None else (state or {}).get("engine"),
    }


def harmonic_status(results: Path, config: Mapping[str, Any], system) -> dict[str, Any]:
    """Status of one system's harmonic route: complete when every batch of single points is recorded done;
    ``steps_*`` count single points (the reference included), ``seconds_per_step`` is the median of CP2K's
    time over the finished ones and ``seconds_left`` that times the ones left; ``segments`` the relaxation's."""
    from qdphonon.harmonic.cost import harmonic_displacements_per_job
    from qdphonon.harmonic.plan import HARMONIC_DIR, batch_record, n_batches, n_displacements
    from qdphonon.harmonic.runner import single_point_walls, single_points_running
    from qdphonon.run.files import RELAX_STATE_FILE

    root = results / HARMONIC_DIR / system.name
    n_disp = n_displacements(config, system)
    batches = n_batches(n_disp, harmonic_displacements_per_job(config, system))
    complete = all(Path(batch_record(str(results), system.name, b)).is_file() for b in range(batches))
    relax = read_json(root / "relax" / RELAX_STATE_FILE) or {}
    segments = relax.get("segments", [])
    last = segments[-1] if segments else None
    relaxing = bool(last and last.get("ended") == SegmentEnd.RUNNING and process_alive(last.get("pid")))
    walls = single_point_walls(root / "sp")
    in_flight = single_points_running(root / "sp")
    done = len(walls)
    timed = sorted(w for w in walls if w is not None)
    per_sp = timed[len(timed) // 2] if timed else None
    if complete:
        state_word = "complete"
    elif (root / "relaxed.xyz").is_file():
        state_word = "single points" if done or in_flight else "relaxed"
        if in_flight:
            state_word += f" ({len(in_flight)} running)"
    elif relaxing or not segments:
        state_word = "relaxing" if relaxing else "not started"
    else:
        state_word = "relaxation " + segments_state(segments, relaxing)
    return {"run_dir": str(root), "state": state_word, "complete": complete, "running": relaxing or bool(in_flight),
            "steps_done": done, "steps_planned": n_disp + 1, "segments": [str(s.get("ended")) for s in segments],
            "seconds_per_step": per_sp, "seconds_left": None if per_sp is None else per_sp * (n_disp + 1 - done),
            "engine": config["engine"]}  # fmt: skip


def campaign_status(results: str | os.PathLike, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per (system, replica) of a schema-validated config, and one ``harmonic`` row per system on
    the harmonic route."""
    from qdphonon.provenance import system_warnings

    results = Path(results)
    rows = []
    for system in campaign_from_config(config).values():
        warned = system_warnings(results, system.name)
        if "md" in system.routes:
            for replica in system.all_replicas:
                row = replica_status(results / "aimd" / system.name / replica, int(system.md["steps"]))
                rows.append({"system": system.name, "replica": replica, **row, "warnings": warned})
        if "harmonic" in system.routes:
            rows.append({"system": system.name, "replica": "harmonic", **harmonic_status(results, config, system),
                         "warnings": warned})  # fmt: skip
    return rows


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def format_status(rows: list[dict[str, Any]]) -> str:
    """A fixed-width table: one line per replica, then the campaign's totals."""
    w = max([4, *(len(r["replica"]) for r in rows)])  # r0_T300K: replicas at other MD temperatures
    head = f"{'system':<20} {'rep':<{w}} {'state':<22} {'steps':>13} {'s/step':>8} {'left':>9}  segments"
    lines = [head]
    for r in rows:
        sps = "-" if r["seconds_per_step"] is None else f"{r['seconds_per_step']:.3g}"
        lines.append(f"{r['system']:<20} {r['replica']:<{w}} {r['state']:<22} "
                     f"{r['steps_done']:>6}/{r['steps_planned']:<6} {sps:>8} {_hours(r['seconds_left']):>9}  "
                     f"{','.join(r['segments']) or '-'}")  # fmt: skip
    n_done = sum(r["complete"] for r in rows)
    n_run = sum(r["running"] for r in rows)
    n_harmonic = sum(r["replica"] == "harmonic" for r in rows)
    what = "replicas" if not n_harmonic else "runs (MD replicas; harmonic: single points of the harmonic route)"
    lines.append(f"{n_done} of {len(rows)} {what} complete, {n_run} running")
    warned = {r["system"]: r.get("warnings") for r in rows if r.get("warnings")}
    lines += [f"warning {system}: {', '.join(kinds)}" for system, kinds in warned.items()]
    return "\n".join(lines)
