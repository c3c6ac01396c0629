"""The one segment loop (qdphonon.engines.segment.run_segments) with jobs made here, and the typed state
files (qdphonon.run.state_records). The MD, relaxation and mock jobs through the same loop are tested with
real CP2K in test_engines.py and test_engine_recovery.py, and with the mock in test_mock.py."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from qdphonon.engines.segment import InProcessLauncher
from qdphonon.engines.process import ProcessResult
from qdphonon.engines.segment import SegmentPlan, run_segments
from qdphonon.run.errors import RunInterrupted
from qdphonon.run.layout import SegmentEnd
from qdphonon.run.lock import lock_holder
from qdphonon.run.state_records import RelaxState, RunState, check_state, read_state


@dataclasses.dataclass
class CountingJob:
    """Runs ``n`` segments, each writing its number to a file; segment ``fail_at`` is recorded as killed."""

    directory: Path
    n: int
    fail_at: int | None = None
    segment_key: str = "start_step"
    state_record: Any = RunState
    purpose: str = "test"
    opened: int = 0

    @property
    def state_path(self) -> Path:
        return self.directory / "segments.json"

    def open(self, lock) -> dict[str, Any]:
        self.opened += 1
        assert lock_holder(self.directory)["purpose"] == "test"
        state = read_state(RunState, self.state_path) or {"engine": "mock", "segments": []}
        for seg in state["segments"]:
            if seg["ended"] == SegmentEnd.KILLED.value:
                seg["ended"] = SegmentEnd.FAILED.value
        return state

    def plan(self, state) -> SegmentPlan | None:
        done = sum(s["ended"] == SegmentEnd.COMPLETED.value for s in state["segments"])
        if done >= self.n:
            return None
        i = len(state["segments"])
        return SegmentPlan(f"s{i}.inp", f"s{i}.out", f"segment {i}\n", {self.segment_key: done})

    def launch(self) -> None:
        i = len(list(self.directory.glob("s*.inp"))) - 1
        (self.directory / f"s{i}.out").write_text(f"ran {i}\n")

    def close(self, seg, result: ProcessResult) -> None:
        seg["ended"] = (SegmentEnd.KILLED if seg["index"] == self.fail_at else SegmentEnd.COMPLETED).value
        seg["end_step"] = seg["start_step"] + 1 if self.segment_key == "start_step" else None

    def check(self, seg, result) -> None:
        if seg["ended"] == SegmentEnd.KILLED.value:
            raise RunInterrupted(f"segment {seg['index']} killed", 143)

    def finish(self, state) -> dict[str, Any]:
        return {"segments": len(state["segments"])}


def test_the_loop_runs_segments_in_order_until_the_job_plans_no_more(tmp_path):
    job = CountingJob(tmp_path, n=3)
    assert run_segments(job, InProcessLauncher(job.launch, "test")) == {"segments": 3}
    state = json.loads(job.state_path.read_text())
    assert [s["index"] for s in state["segments"]] == [0, 1, 2]
    assert [s["start_step"] for s in state["segments"]] == [0, 1, 2]
    assert all(s["ended"] == "completed" and s["exit_status"] == 0 for s in state["segments"])
    assert [(tmp_path / f"s{i}.out").read_text() for i in range(3)] == ["ran 0\n", "ran 1\n", "ran 2\n"]
    assert lock_holder(tmp_path) is None


def test_a_segment_that_does_not_complete_ends_the_call_with_its_state_written_and_the_next_call_continues(tmp_path):
    job = CountingJob(tmp_path, n=2, fail_at=1)
    with pytest.raises(RunInterrupted, match="segment 1 killed"):
        run_segments(job, InProcessLauncher(job.launch, "test"))
    state = json.loads(job.state_path.read_text())
    assert [s["ended"] for s in state["segments"]] == ["completed", "killed"]
    job.fail_at = None
    assert run_segments(job, InProcessLauncher(job.launch, "test")) == {"segments": 3}
    assert [s["ended"] for s in json.loads(job.state_path.read_text())["segments"]] == ["completed", "failed", "completed"]


def test_a_misspelt_segment_key_is_refused_before_the_state_is_written(tmp_path):
    job = CountingJob(tmp_path, n=1, segment_key="start_stpe")
    with pytest.raises(ValueError, match=r"segments.json: segments\[0\]: unknown segments.json segment key 'start_stpe'"):
        run_segments(job, InProcessLauncher(job.launch, "test"))
    assert not job.state_path.exists() and not (tmp_path / "s0.out").exists()


def test_read_state_names_the_file_and_the_key(tmp_path):
    path = tmp_path / "relax-state.json"
    good = {"input_sha256": "ab", "structure": "x.xyz", "level": "pbe", "max_iter": 5, "project": "relax",
            "segments": [{"index": 0, "project": "relax", "input": "relax.inp", "output": "relax.out",
                          "start": "structure", "ended": "running"}]}  # fmt: skip
    path.write_text(json.dumps(good))
    assert read_state(RelaxState, path) == good
    path.write_text(json.dumps({**good, "max_iter": "5"}))
    with pytest.raises(ValueError, match=r"relax-state.json: relax-state.json key max_iter: '5' is not of type int"):
        read_state(RelaxState, path)
    bad_seg = {**good, "segments": [{**good["segments"][0], "iteration": 3}]}
    with pytest.raises(ValueError, match=r"segments\[0\]: unknown relax-state.json segment key 'iteration'"):
        check_state(RelaxState, bad_seg, path)
    assert read_state(RelaxState, tmp_path / "none.json") is None


def test_state_files_of_older_runs_in_the_shipped_validation_archives_still_read():
    """The PBE validation archives hold segments.json and relax-state.json written by earlier versions."""
    import tarfile

    root = Path(__file__).resolve().parents[1] / "validation"
    seen = 0
    for archive in sorted(root.glob("*/*.tar.xz")):
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = Path(member.name).name
                if name in ("segments.json", "relax-state.json"):
                    data = json.load(tar.extractfile(member))
                    check_state(RunState if name == "segments.json" else RelaxState, data, f"{archive.name}:{member.name}")
                    seen += 1
    assert seen >= 2
