"""Corrupt and truncated CP2K outputs, made from the real CP2K 2023.1 fixtures (tests/data/cp2k-2023.1).

Each case damages a copy of a fixture the way a kill, a full disk, a crashed node or a wrong
file would, and checks that the parser either refuses it with a message naming the file and
the line, or handles it (a warning naming file and line) without losing anything before the
damage: the steps that remain equal what independent readers (regular expressions, numpy,
ase) take from the undamaged files. Reference values are never taken from qdphonon.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from qdphonon.parsers.common import ParseWarning
from qdphonon.parsers.energies import read_energies
from qdphonon.parsers.run_dir import parse_run_dir
from qdphonon.parsers.xyz import read_positions, read_velocities
from archives import extract

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1"


@pytest.fixture(scope="module")
def unpacked(tmp_path_factory):
    root = tmp_path_factory.mktemp("fixtures")

    def get(name: str) -> Path:
        dest = root / name
        if not dest.exists():
            archive = DATA / name / "run.tar.xz"
            if not archive.is_file():
                pytest.fail(f"fixture {archive} missing: regenerate with tests/data/make_fixtures.py")
            with tarfile.open(archive) as tar:
                extract(tar, dest)
        return dest

    return get


@pytest.fixture
def copy(unpacked, tmp_path):
    def make(name: str) -> Path:
        dest = tmp_path / name
        shutil.copytree(unpacked(name), dest)
        return dest

    return make


# ----------------------------------------------------------------------------- independent readers
def molog_edges(path: Path, homo: int) -> list[tuple[float, float]]:
    """(HOMO, LUMO) eigenvalues [eV] of every MD block (restart-guess blocks skipped), by regex."""
    out, skip, cur = [], False, None
    for line in path.read_text(errors="replace").splitlines():
        if "EIGENVALUES AND OCCUPATION NUMBERS" in line:
            skip = "AFTER SCF STEP" in line
            if not skip:
                cur = {}
                out.append(cur)
            continue
        m = re.match(r"\s*MO\|\s+(\d+)\s+\S+\s+(\S+)\s+\S+\s*$", line)
        if m and not skip:
            cur[int(m.group(1))] = float(m.group(2))
    return [(b[homo], b[homo + 1]) for b in out if homo in b and homo + 1 in b]


def homo_of(out: Path) -> int:
    return int(re.search(r"Number of electrons:\s+(\d+)", out.read_text()).group(1)) // 2


def block_header_lines(path: Path) -> list[int]:
    return [i for i, line in enumerate(path.read_text().splitlines(), 1) if "EIGENVALUES AND OCCUPATION" in line]


def frame_starts(path: Path) -> list[int]:
    """1-based line numbers of the atom-count lines of an XYZ file."""
    lines = path.read_text().splitlines()
    n = int(lines[0])
    return list(range(1, len(lines) + 1, n + 2))


def xyz_values(path: Path) -> np.ndarray:
    import ase.io

    return np.array([a.positions for a in ase.io.read(path, index=":", format="xyz")])


def ener_table(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#", ndmin=2)


def parse(d: Path, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = parse_run_dir(d, **kw)
    return result, [str(w.message) for w in caught]


def lines_of(path: Path) -> list[str]:
    return path.read_text(errors="surrogateescape").splitlines(True)


def write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(lines), errors="surrogateescape")


def assert_edges_equal(result, expected: list[tuple[float, float]], steps) -> None:
    np.testing.assert_array_equal(result.band_edges.step, steps)
    np.testing.assert_array_equal(result.band_edges.vbm_eV, [e[0] for e in expected])
    np.testing.assert_array_equal(result.band_edges.cbm_eV, [e[1] for e in expected])


A, RESTART, SMEAR = "xtb_cs4pbbr6_20steps", "xtb_cs4pbbr6_restart", "xtb_cs20pb8br36_smearing"


# ----------------------------------------------------------------------------- MOLog
def test_molog_block_without_its_end_mid_file_is_refused(copy):
    d = copy(A)
    molog = d / "md-mo-1.MOLog"
    lines = lines_of(molog)
    header = block_header_lines(molog)[5]
    end = next(i for i in range(header, len(lines)) if "E(Fermi)" in lines[i])
    del lines[end : end + 2]  # the E(Fermi) and Band gap lines of the block of step 5
    write_lines(molog, lines)
    with pytest.raises(ValueError, match=rf"md-mo-1\.MOLog: line {header}: MO block cut short, but its step \(5\) completed"):
        parse_run_dir(d)


def test_molog_cut_inside_the_last_block_of_a_finished_run_is_refused(copy):
    d = copy(A)
    molog = d / "md-mo-1.MOLog"
    data = molog.read_bytes()
    last = block_header_lines(molog)[-1]
    cut = data.index(b" MO|", data.rindex(b"EIGENVALUES")) + 60  # inside the block's first orbital row
    molog.write_bytes(data[:cut])
    n_steps = len(ener_table(d / "md-1.ener")) - 1
    with pytest.raises(ValueError, match=rf"md-mo-1\.MOLog: line {last}: MO block cut short, but its step \({n_steps}\)"):
        parse_run_dir(d)


def test_molog_cut_inside_a_killed_steps_block_keeps_every_earlier_step(copy, unpacked):
    """The state a kill leaves when it lands while CP2K writes the last step's MO block: the main
    output ends after that step's 'SCF run converged', the block is cut short, the step's energy
    line and frames are not written yet (made from the uninterrupted run, so the moment is exact)."""
    d = copy(A)
    homo = homo_of(d / "seg000.out")
    expected = molog_edges(unpacked(A) / "md-mo-1.MOLog", homo)
    last = len(expected) - 1
    out = d / "seg000.out"
    text = out.read_bytes()
    conv = text.rindex(b"SCF run converged")
    out.write_bytes(text[: text.index(b"\n", conv) + 1])
    molog = d / "md-mo-1.MOLog"
    data = molog.read_bytes()
    molog.write_bytes(data[: data.rindex(b" MO|") - 30])
    for name in ("md-pos-1.xyz", "md-vel-1.xyz"):
        lines = lines_of(d / name)
        write_lines(d / name, lines[: frame_starts(d / name)[-1] - 1])
    write_lines(d / "md-1.ener", lines_of(d / "md-1.ener")[:-1])
    result, warned = parse(d)
    assert_edges_equal(result, expected[:last], np.arange(last))
    header = block_header_lines(molog)[-1]
    assert any(re.search(rf"md-mo-1\.MOLog: line {header}: MO block of a killed step cut short", w) for w in warned), warned
    assert any(re.search(rf"seg000\.out: line \d+: run ended during step {last}", w) for w in warned), warned
    np.testing.assert_array_equal(result.positions.values, xyz_values(unpacked(A) / "md-pos-1.xyz")[:-1])


def test_molog_nan_eigenvalue_is_refused(copy):
    d = copy(A)
    molog = d / "md-mo-1.MOLog"
    lines = lines_of(molog)
    header = block_header_lines(molog)[3]
    row = next(i for i in range(header, len(lines)) if re.match(r"\s*MO\|\s+25\s", lines[i]))
    parts = lines[row].split()
    lines[row] = lines[row].replace(parts[3], "NaN")
    write_lines(molog, lines)
    with pytest.raises(ValueError, match=rf"md-mo-1\.MOLog: line {row + 1}: non-finite eigenvalue"):
        parse_run_dir(d)


def test_molog_binary_junk_is_refused(copy):
    d = copy(A)
    molog = d / "md-mo-1.MOLog"
    lines = lines_of(molog)
    at = block_header_lines(molog)[7] + 3
    junk = bytes(range(256)).replace(b"\n", b"").decode("latin-1")
    lines.insert(at, junk + "\n")
    molog.write_bytes("".join(lines).encode("latin-1", errors="replace"))
    with pytest.raises(ValueError, match=rf"md-mo-1\.MOLog: line {at + 1}: unexpected line"):
        parse_run_dir(d)


def test_empty_molog_is_refused(copy):
    d = copy(A)
    (d / "md-mo-1.MOLog").write_text("")
    with pytest.raises(ValueError, match=r"md-mo-1\.MOLog: MO print file is empty"):
        parse_run_dir(d)


def test_molog_of_another_run_is_refused(copy, unpacked):
    d = copy(A)
    shutil.copyfile(unpacked(SMEAR) / "md-mo-1.MOLog", d / "md-mo-1.MOLog")
    n_blocks = len(block_header_lines(d / "md-mo-1.MOLog"))
    with pytest.raises(ValueError, match=rf"md-mo-1\.MOLog: line {block_header_lines(d / 'md-mo-1.MOLog')[-1]}: "
                                         rf"the last MO block; \d+ missing: {n_blocks} MO blocks do not fit"):
        parse_run_dir(d)


# ----------------------------------------------------------------------------- XYZ
def test_xyz_cut_inside_the_last_frame_keeps_every_earlier_frame(copy, unpacked):
    d = copy(A)
    pos = d / "md-pos-1.xyz"
    starts = frame_starts(pos)
    reference = xyz_values(unpacked(A) / "md-pos-1.xyz")
    lines = lines_of(pos)
    write_lines(pos, lines[: starts[-1] + 4] + [lines[starts[-1] + 4][:17]])
    result, warned = parse(d)
    np.testing.assert_array_equal(result.positions.values, reference[:-1])
    assert any(f"md-pos-1.xyz: line {starts[-1]}: last frame is incomplete" in w for w in warned), warned


def test_xyz_frame_with_the_wrong_atom_count_is_refused(copy):
    d = copy(A)
    pos = d / "md-pos-1.xyz"
    starts = frame_starts(pos)
    lines = lines_of(pos)
    lines[starts[2] - 1] = "      12\n"
    write_lines(pos, lines)
    with pytest.raises(ValueError, match=rf"md-pos-1\.xyz: line {starts[2]}: expected the atom count 11"):
        read_positions(pos)


def test_xyz_frame_missing_an_atom_line_mid_file_is_refused(copy):
    d = copy(A)
    vel = d / "md-vel-1.xyz"
    starts = frame_starts(vel)
    lines = lines_of(vel)
    del lines[starts[1] + 5]  # one atom line of the second frame
    write_lines(vel, lines)
    # the third frame's count line moved up one line: the reader finds a comment line where it expects 11
    with pytest.raises(ValueError, match=rf"md-vel-1\.xyz: line {starts[2]}: expected the atom count 11"):
        read_velocities(vel)


def test_xyz_binary_junk_in_an_atom_line_is_refused(copy):
    d = copy(A)
    pos = d / "md-pos-1.xyz"
    starts = frame_starts(pos)
    data = pos.read_bytes()
    lines = data.split(b"\n")
    target = starts[1] + 3  # 1-based line number of an atom line
    lines[target - 1] = bytes([0, 255, 17, 200] * 10)[: len(lines[target - 1])]
    pos.write_bytes(b"\n".join(lines))
    with pytest.raises(ValueError, match=rf"md-pos-1\.xyz: line {target}: "):
        read_positions(pos)


def test_xyz_nan_coordinate_is_refused(copy):
    d = copy(A)
    pos = d / "md-pos-1.xyz"
    starts = frame_starts(pos)
    lines = lines_of(pos)
    target = starts[2] + 4
    parts = lines[target - 1].split()
    lines[target - 1] = f" {parts[0]} {parts[1]} nan {parts[3]}\n"
    write_lines(pos, lines)
    with pytest.raises(ValueError, match=rf"md-pos-1\.xyz: line {target}: non-finite number"):
        read_positions(pos)


def test_empty_xyz_is_refused(copy):
    d = copy(A)
    (d / "md-vel-1.xyz").write_text("")
    with pytest.raises(ValueError, match=r"md-vel-1\.xyz: XYZ trajectory is empty"):
        parse_run_dir(d)


# ----------------------------------------------------------------------------- .ener
def test_ener_garbage_line_is_refused(copy):
    d = copy(A)
    ener = d / "md-1.ener"
    lines = lines_of(ener)
    lines.insert(6, "garbage %%% written by someone else\n")
    write_lines(ener, lines)
    with pytest.raises(ValueError, match=r"md-1\.ener: line 7: expected 7 columns"):
        read_energies(ener)


def test_ener_nan_is_refused(copy):
    d = copy(A)
    ener = d / "md-1.ener"
    lines = lines_of(ener)
    parts = lines[9].split()
    lines[9] = "  ".join(parts[:4] + ["NaN"] + parts[5:]) + "\n"
    write_lines(ener, lines)
    with pytest.raises(ValueError, match=r"md-1\.ener: line 10: non-finite number"):
        read_energies(ener)


@pytest.mark.parametrize("tail", ["torn", "nul"])
def test_ener_torn_or_zero_filled_last_line_keeps_every_earlier_step(copy, unpacked, tail):
    """A kill during the write (torn line), or a node crash that left the file's new tail zero-filled."""
    d = copy(A)
    ener = d / "md-1.ener"
    reference = ener_table(unpacked(A) / "md-1.ener")
    data = ener.read_bytes()
    if tail == "torn":
        ener.write_bytes(data[:-40])
        keep = reference[:-1]
    else:
        ener.write_bytes(data + b"\0" * 300)
        keep = reference
    n_lines = ener.read_bytes().count(b"\n") + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        en = read_energies(ener)
    np.testing.assert_array_equal(en.step, keep[:, 0].astype(int))
    np.testing.assert_array_equal(en.temperature_K, keep[:, 3])
    assert any(f"md-1.ener: line {n_lines}: incomplete last line" in str(w.message) for w in caught)


# ----------------------------------------------------------------------------- main outputs
def test_main_output_cut_inside_the_last_step_line_keeps_every_earlier_step(copy, unpacked):
    d = copy(A)
    out = d / "seg000.out"
    text = out.read_bytes()
    last_step = text.rindex(b" MD| Step number")
    out.write_bytes(text[: last_step + 20])
    homo = homo_of(unpacked(A) / "seg000.out")
    expected = molog_edges(unpacked(A) / "md-mo-1.MOLog", homo)
    result, warned = parse(d)
    assert_edges_equal(result, expected[:-1], np.arange(len(expected) - 1))
    assert any(re.search(r"seg000\.out: line \d+: run ended during step", w) for w in warned), warned


def test_main_output_garbage_step_line_is_refused(copy):
    d = copy(A)
    out = d / "seg000.out"
    lines = lines_of(out)
    at = next(i for i, line in enumerate(lines) if "MD| Step number" in line)
    lines[at] = " MD| Step number                                                              x7\n"
    write_lines(out, lines)
    with pytest.raises(ValueError, match=rf"seg000\.out: line {at + 1}: bad step line"):
        parse_run_dir(d)


def test_main_output_with_zero_filled_banner_is_handled_identically(copy, unpacked):
    """A node crash can zero-fill blocks of a file; in the banner they change nothing."""
    d = copy(A)
    out = d / "seg000.out"
    data = bytearray(out.read_bytes())
    start = data.index(b"CP2K| Program compiled at")
    data[start : start + 80] = b"\0" * 80
    out.write_bytes(bytes(data))
    homo = homo_of(unpacked(A) / "seg000.out")
    expected = molog_edges(unpacked(A) / "md-mo-1.MOLog", homo)
    result, _ = parse(d)
    assert_edges_equal(result, expected, np.arange(len(expected)))


def test_empty_main_output_is_set_aside_and_the_rest_parsed(copy, unpacked):
    d = copy(A)
    (d / "seg001.out").write_text("")
    homo = homo_of(unpacked(A) / "seg000.out")
    expected = molog_edges(unpacked(A) / "md-mo-1.MOLog", homo)
    result, warned = parse(d, outputs=["seg000.out", "seg001.out"])
    assert_edges_equal(result, expected, np.arange(len(expected)))
    assert result.layout.set_aside == [d / "seg001.out"] and any("seg001.out: empty main output" in w for w in warned)


def test_main_output_of_another_system_is_refused(copy, unpacked):
    """An output of another input (the 64-atom smeared run) where the continuation's should be."""
    d = copy(RESTART)
    shutil.copyfile(unpacked(SMEAR) / "seg000.out", d / "seg001.out")
    line = next(i for i, t in enumerate((d / "seg001.out").read_text().splitlines(), 1) if "Number of electrons" in t)
    with pytest.raises(ValueError, match=rf"seg001\.out: line {line}: 304 electrons, but .*seg000\.out .* has 50"):
        parse_run_dir(d, outputs=["seg000.out", "seg001.out"])


def test_main_output_of_another_project_is_refused(copy):
    d = copy(RESTART)
    out = d / "seg001.out"
    lines = lines_of(out)
    at = next(i for i, t in enumerate(lines) if "GLOBAL| Project name" in t)
    lines[at] = lines[at].replace(" md\n", " qd\n")
    write_lines(out, lines)
    with pytest.raises(ValueError, match=rf"seg001\.out: line {at + 1}: project 'qd', but seg000\.out has 'md'"):
        parse_run_dir(d)


# ----------------------------------------------------------------------------- engine state
def test_corrupt_segments_json_is_refused(copy):
    d = copy(A)
    (d / "segments.json").write_text('{"engine": "cp2k",\n "segments": [\n  {"index": 0,')
    with pytest.raises(ValueError, match=r"segments\.json: line 3: not valid JSON"):
        parse_run_dir(d)


def test_molog_counts_of_segments_json_that_do_not_fit_are_refused(copy):
    """segments.json of our engine records each segment's MO blocks; a MOLog with fewer is refused."""
    d = copy(RESTART)
    heads = [t for t in (d / "md-mo-1.MOLog").read_text().splitlines() if "EIGENVALUES AND OCCUPATION" in t]
    n = sum("AFTER SCF STEP" not in h for h in heads)
    state = {"engine": "cp2k", "project": "md", "steps": 20, "segments": [
        {"index": 0, "output": "seg000.out", "ended": "killed", "molog_blocks": n},
        {"index": 1, "output": "seg001.out", "ended": "completed", "molog_blocks": 5}]}  # fmt: skip
    (d / "segments.json").write_text(json.dumps(state))
    with pytest.raises(ValueError, match=rf"md-mo-1\.MOLog: {n} MO blocks, but the segments up to seg001\.out recorded {n + 5}"):
        parse_run_dir(d)


def test_a_torn_mo_block_after_the_counted_ones_is_dropped_and_a_whole_one_refused(copy):
    """A run of ours killed while CP2K wrote an MO block, never continued: segments.json counts the whole
    blocks, the torn one after them is dropped with a warning (the band edges are those of the whole
    blocks); a whole block that segments.json does not account for is still refused."""
    d = copy(A)
    whole = parse_run_dir(d).band_edges
    text = (d / "md-mo-1.MOLog").read_text()
    n = sum("EIGENVALUES AND OCCUPATION" in h and "AFTER SCF STEP" not in h for h in text.splitlines())
    state = {"engine": "cp2k", "project": "md", "steps": 20, "segments": [
        {"index": 0, "output": "seg000.out", "ended": "killed", "molog_blocks": n}]}  # fmt: skip
    (d / "segments.json").write_text(json.dumps(state))
    last = text.rstrip("\n").split("\n")
    start = max(i for i, ln in enumerate(last) if "EIGENVALUES AND OCCUPATION" in ln)
    block = last[start:]
    (d / "md-mo-1.MOLog").write_text(text + "\n".join(block[:4]) + "\n")  # header and a few lines: torn
    with pytest.warns(ParseWarning, match=rf"MO block cut short after the {n} that segments\.json accounts for"):
        torn = parse_run_dir(d).band_edges
    for name in ("step", "time_fs", "vbm_eV", "cbm_eV"):
        np.testing.assert_array_equal(getattr(torn, name), getattr(whole, name))
    assert len(whole.step) == 21
    (d / "md-mo-1.MOLog").write_text(text + "\n".join(block) + "\n")
    with pytest.raises(ValueError, match=rf"MO block after the {n} that segments\.json accounts for"):
        parse_run_dir(d)

