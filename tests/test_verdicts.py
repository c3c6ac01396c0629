"""Verdicts about CP2K's text (qdphonon.parsers.verdicts) on real CP2K 2023.1 outputs (tests/data)
and, where no real output of the kind is kept, on a real output edited as CP2K's source words it."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from qdphonon.parsers.output_header import read_output_header
from qdphonon.parsers.verdicts import (
    GeoOptEnd, OutputEnd, RunType, abort_message, geo_opt_end, output_end, reports_scf_failure,
)  # fmt: skip

DATA = Path(__file__).parent / "data" / "cp2k-2023.1"


def real(name: str, member: str, dest: Path) -> Path:
    with tarfile.open(DATA / name / "run.tar.xz") as tar:
        data = tar.extractfile(member).read()
    out = dest / f"{name}-{member}"
    out.write_bytes(data)
    return out


@pytest.mark.parametrize("name, member, expected", [
    ("xtb_cs4pbbr6_20steps", "seg000.out", OutputEnd.COMPLETED),
    ("xtb_cs4pbbr6_walltime", "seg000.out", OutputEnd.WALLTIME),
    ("xtb_cs4pbbr6_walltime", "seg001.out", OutputEnd.WALLTIME),
    ("xtb_cs4pbbr6_walltime", "seg002.out", OutputEnd.COMPLETED),
    ("xtb_cs4pbbr6_killed", "seg000.out", OutputEnd.NOT_ENDED),
    ("xtb_cs4pbbr6_restart", "seg001.out", OutputEnd.COMPLETED),
])  # fmt: skip
def test_how_real_outputs_ended(tmp_path, name, member, expected):
    out = real(name, member, tmp_path)
    assert output_end(out) is expected
    assert output_end(out).ended is (expected is not OutputEnd.NOT_ENDED)
    header = read_output_header(out)
    assert header.run_type is RunType.MD and header.project == "md" and header.cp2k_version == "2023.1"


def test_a_missing_output_and_an_exit_file_stop(tmp_path):
    assert output_end(tmp_path / "nothing.out") is OutputEnd.MISSING
    text = real("xtb_cs4pbbr6_walltime", "seg000.out", tmp_path).read_text()
    # CP2K's wording for an EXIT file (md_run.F: "MD run terminated by external request")
    edited = text.replace("MD run terminated - exceeded requested execution time:       0.600 seconds.",
                          "MD run terminated by external request")
    edited = edited.replace("SCF run terminated - exceeded requested execution time:       0.600 seconds.",
                            "SCF run terminated by external request")
    assert edited != text and "exceeded requested" not in edited
    (tmp_path / "exit.out").write_text(edited)
    assert output_end(tmp_path / "exit.out") is OutputEnd.EXIT_FILE


def test_an_abort_is_an_abort_and_its_box_is_the_message(tmp_path):
    text = real("xtb_cs4pbbr6_killed", "seg000.out", tmp_path).read_text()
    box = ("\n *******************************************************************************\n"
           " *   ___                                                                       *\n"
           " *  /   \\                                                                      *\n"
           " * [ABORT]                                                                     *\n"
           " *  \\___/        The specified input file does not exist or cannot be read     *\n"
           " *    |                                                                        *\n"
           " *  O/|                                                                        *\n"
           " * /| |                                                                        *\n"
           " * / \\                                                    cp2k_runs.F:1234     *\n"
           " *******************************************************************************\n")
    (tmp_path / "abort.out").write_text(text + box)
    assert output_end(tmp_path / "abort.out") is OutputEnd.ABORT and not OutputEnd.ABORT.ended
    assert "The specified input file does not exist" in abort_message(tmp_path / "abort.out")
    assert abort_message(tmp_path / "none.out").endswith("none.out was not written")


def test_scf_failure_phrases_in_real_outputs(tmp_path):
    assert reports_scf_failure(real("xtb_cs4pbbr6_scf_unconverged", "seg000.out", tmp_path).read_bytes())
    assert reports_scf_failure(real("pbe_cs4pbbr6_outer_scf", "seg000.out", tmp_path).read_bytes())
    assert not reports_scf_failure(real("xtb_cs4pbbr6_20steps", "seg000.out", tmp_path).read_bytes())


def test_geo_opt_and_run_type_verdicts(tmp_path):
    md = real("xtb_cs4pbbr6_20steps", "seg000.out", tmp_path)
    assert geo_opt_end(md) is GeoOptEnd.NOT_CONVERGED and geo_opt_end(tmp_path / "x") is GeoOptEnd.NOT_CONVERGED
    (tmp_path / "geo.out").write_text(md.read_text().replace("Run type                                                             MD",
                                                             "Run type                                                        GEO_OPT")
                                      + " *** GEOMETRY OPTIMIZATION COMPLETED ***\n" + "x" * 300_000 + "\n")
    assert geo_opt_end(tmp_path / "geo.out") is GeoOptEnd.CONVERGED
    assert read_output_header(tmp_path / "geo.out").run_type is RunType.GEO_OPT
    assert RunType.of("md") is RunType.MD and RunType.of("CELL_OPT") is RunType.OTHER and RunType.of(None) is None
