"""The parser applies the SCF policy the run recorded (segments.json, else run.json) unless told
otherwise; a directory recording none gets the schema's default. On the real CP2K 2023.1 run
whose SCF fails at some steps (tests/data/cp2k-2023.1/xtb_cs4pbbr6_scf_unconverged)."""

from __future__ import annotations

import json
import tarfile
import warnings
from pathlib import Path

import pytest

from qdphonon import settings
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.parsers.discover import recorded_scf_policy

DATA = Path(__file__).parent / "data" / "cp2k-2023.1"


@pytest.fixture
def run(tmp_path) -> Path:
    with tarfile.open(DATA / "xtb_cs4pbbr6_scf_unconverged" / "run.tar.xz") as tar:
        for member in tar.getmembers():
            (tmp_path / member.name).write_bytes(tar.extractfile(member).read())
    return tmp_path


def parse(run: Path, policy: str | None = None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parse_run_dir(run, on_scf_failure=policy)


def test_the_recorded_policy_is_applied_unless_told_otherwise(run):
    assert recorded_scf_policy(run) is None
    default = parse(run)
    assert default.scf_policy == settings.default("scf.on_failure") and default.n_scf_unconverged > 0
    state = {"engine": "cp2k", "project": "md", "molog": "md-mo-1.MOLog", "on_scf_failure": "keep_flagged",
             "segments": [{"index": 0, "input": "seg000.inp", "output": "seg000.out", "ended": "completed"}]}
    (run / "segments.json").write_text(json.dumps(state))
    assert recorded_scf_policy(run) == "keep_flagged"
    kept = parse(run)
    assert kept.scf_policy == "keep_flagged" and kept.dropped_steps == []
    assert (~kept.band_edges.scf_converged).sum() == kept.n_scf_unconverged
    dropped = parse(run, "drop_step")  # told otherwise
    assert dropped.scf_policy == "drop_step" and len(dropped.dropped_steps) == kept.n_scf_unconverged
    (run / "segments.json").unlink()
    (run / "run.json").write_text(json.dumps({"on_scf_failure": "fail"}))
    with pytest.raises(ValueError, match="SCF"):
        parse(run)
