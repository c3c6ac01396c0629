"""run.json is a typed record (qdphonon.run.run_record): every key described, the real PBE records
shipped in validation/pbe_n1/ (made before the record existed) load and are rebuilt key for key, the
mock engine's record conforms, and a misspelt key is refused by ``qdphonon status`` and ``check``
with the file and the key named."""

from __future__ import annotations

import contextlib
import json
import tarfile
from pathlib import Path

import pytest

from qdphonon.cli import main
from qdphonon.run.layout import write_json_atomic
from qdphonon.run.run_record import RunRecord, SegmentRecord, build_run_record, read_run_record

from test_status import campaign
from archives import extract

ARCHIVE = Path(__file__).resolve().parents[1] / "validation" / "pbe_n1" / "pbe_n1.tar.xz"


@pytest.fixture(scope="module")
def shipped(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("pbe_n1_runs")
    with tarfile.open(ARCHIVE) as tar:
        names = [m for m in tar.getmembers() if m.name.endswith("/run.json")]
        extract(tar, out, members=names)
    return sorted(out.rglob("run.json"))


def test_every_key_is_described():
    for cls in (RunRecord, SegmentRecord):
        for name, meta in cls.field_info().items():
            assert isinstance(meta["description"], str) and len(meta["description"]) > 10, (cls.__name__, name)
            if name.endswith(("_fs", "_K", "_s")):
                assert meta["unit"] == name.rsplit("_", 1)[1], (cls.__name__, name)


def test_the_shipped_records_load_and_are_rebuilt_byte_for_byte(shipped, tmp_path):
    assert len(shipped) == 2
    for path in shipped:
        record = read_run_record(path)
        assert record.engine == "cp2k" and record.total_steps == 300 and record.md_temperature_K == 10.0
        write_json_atomic(tmp_path / "run.json", build_run_record(json.loads(path.read_text())))
        assert (tmp_path / "run.json").read_text() == path.read_text()


def test_the_mock_engines_record_conforms(tmp_path):
    from test_attribution_mock import mock_run

    record, _ = mock_run(tmp_path, (1, 1, 1), steps=40, every=2)
    back = read_run_record(tmp_path / "run" / "run.json")
    assert back.engine == "mock" and back.synthetic is True and back.total_steps == 40
    assert back.to_json() == record


def test_an_engine_that_misspells_a_key_fails_when_writing(shipped):
    data = json.loads(shipped[0].read_text())
    with pytest.raises(TypeError, match="recoverys"):
        build_run_record({**data, "recoverys": 0})
    with pytest.raises(ValueError, match="key structure belongs to route"):  # a mock key in a cp2k record
        build_run_record({**data, "structure": "dot.xyz"})


@pytest.mark.parametrize("command", ["status", "check"])
@pytest.mark.parametrize("edit, key", [
    (lambda d: d.update(total_step=d.pop("total_steps")), "unknown run.json key 'total_step'"),
    (lambda d: d.pop("input_sha256"), "run.json key input_sha256 missing"),
    (lambda d: d["segments"][1].update(endded=d["segments"][1].pop("ended")), "segment 1: unknown run.json segment key 'endded'"),
])  # fmt: skip
def test_status_and_check_refuse_a_misspelt_key_naming_file_and_key(tmp_path, capsys, command, edit, key):
    cfg = campaign(tmp_path, "finished")
    path = tmp_path / "results/aimd/cspbbr3_1x1x1/r0/run.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with contextlib.chdir(tmp_path):
        rc = main([command, "--results", str(tmp_path / "results"), "--configfile", str(cfg)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith(f"qdphonon {command}: error: {path}"), err
    assert key in err[0], err
