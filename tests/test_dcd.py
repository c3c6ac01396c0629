"""DCD trajectories: the reader and frame-to-step mapping against real CP2K 2023.1 output, and the mock writer.

Fixture ``tests/data/cp2k-2023.1/xtb_cs4pbbr6_dcd_restart`` (tests/data/DCD.md; made by
``tests/data/make_dcd_fixture.py``): four runs of one GFN1-xTB Cs4PbBr6 MD input, 20 steps —
``reference_xyz`` (XYZ prints), ``reference_dcd`` (the same with FORMAT DCD), ``restart`` (DCD,
SIGKILLed and continued with EXT_RESTART) and ``restart_overlap`` (DCD every 3 steps, restart file
every 4, so the continuation re-prints a frame). Reference values are read off the files here with
``struct`` and plain text parsing, independently of qdphonon.parsers. Never runs CP2K.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pytest

from qdphonon.engines.mock_dcd import (
    cp2k_cell_record,
    dcd_frames_bytes,
    dcd_header_bytes,
    mock_titles,
    write_dcd,
)
from qdphonon.parsers.dcd import CP2K_BOHR_A, complete_dcd_length, read_dcd, read_dcd_header, trim_dcd
from qdphonon.parsers.dcd_steps import (
    dcd_length_through_step,
    ener_steps_in_file_order,
    frame_steps,
    read_dcd_run,
    read_dcd_trajectory,
    symbols_from_input,
)
from qdphonon.units import AU_VELOCITY_A_per_fs
from archives import extract

DATA = Path(__file__).resolve().parent / "data" / "cp2k-2023.1" / "xtb_cs4pbbr6_dcd_restart"
RECORD = json.loads((DATA / "fixture.json").read_text())
N_ATOMS, STEPS = 11, 20
HEADER_BYTES = (4 + 84 + 4) + (4 + 4 + 2 * 80 + 4) + (4 + 4 + 4)
FRAME_BYTES = (4 + 48 + 4) + 3 * (4 + 4 * N_ATOMS + 4)
RESTART_TOL_A = 1e-5
RESTART_TOL_A_per_fs = 1e-6
"""Continuation vs uninterrupted run (as tests/test_parsers.py: CP2K's restart file and SCF from the
saved wavefunction; seen here 4e-6 A and 2e-7 A/fs after 11 steps)."""


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("dcd-fixture")
    with tarfile.open(DATA / "run.tar.xz") as tar:
        extract(tar, dest)
    return dest


@pytest.fixture
def copy_run(fixture_root, tmp_path):
    def make(name: str) -> Path:
        return Path(shutil.copytree(fixture_root / name, tmp_path / name))

    return make


def ref_records(path: Path) -> list[bytes]:
    """Every Fortran sequential record of a file (4-byte little-endian markers), read with struct."""
    data, out, pos = path.read_bytes(), [], 0
    while pos < len(data):
        (n,) = struct.unpack_from("<i", data, pos)
        payload = data[pos + 4 : pos + 4 + n]
        (tail,) = struct.unpack_from("<i", data, pos + 4 + n)
        assert tail == n, f"{path}: record at byte {pos}"
        out.append(payload)
        pos += n + 8
    return out


def ref_dcd(path: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    """(header fields, cells (frames, 6), values (frames, atoms, 3) float32) of a CP2K DCD, read with struct."""
    recs = ref_records(path)
    ident = recs[0][:4]
    icntrl = struct.unpack("<9i f 10i", recs[0][4:])
    n_titles = struct.unpack_from("<i", recs[1])[0]
    titles = [recs[1][4 + 80 * i : 84 + 80 * i].decode().rstrip() for i in range(n_titles)]
    (n_atoms,) = struct.unpack("<i", recs[2])
    frames = recs[3:]
    assert len(frames) % 4 == 0
    cells = np.array([struct.unpack("<6d", frames[i]) for i in range(0, len(frames), 4)])
    values = np.array([[struct.unpack(f"<{n_atoms}f", frames[i + k]) for k in (1, 2, 3)]
                       for i in range(0, len(frames), 4)], dtype=np.float32).transpose(0, 2, 1)  # fmt: skip
    head = {"id": ident, "icntrl": icntrl, "titles": titles, "n_atoms": n_atoms,
            "record_lengths": [len(r) for r in recs]}  # fmt: skip
    return head, cells, values


def ref_xyz(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(symbols, steps, values) of a CP2K XYZ trajectory, parsed as plain text."""
    lines = path.read_text().splitlines()
    n = int(lines[0])
    steps, frames = [], []
    for i in range(0, len(lines), n + 2):
        steps.append(int(re.match(r"\s*i\s*=\s*(\d+)", lines[i + 1]).group(1)))
        frames.append([[float(x) for x in ln.split()[1:4]] for ln in lines[i + 2 : i + 2 + n]])
    symbols = [ln.split()[0] for ln in lines[2 : 2 + n]]
    return symbols, np.array(steps), np.array(frames)


def ref_ener(path: Path) -> np.ndarray:
    return np.loadtxt(path, comments="#", ndmin=2)


def input_abc_and_timestep(inp: Path) -> tuple[float, float]:
    text = inp.read_text()
    abc = re.search(r"^\s*ABC\s+(\S+)", text, re.MULTILINE).group(1)
    return float(abc), float(re.search(r"^\s*TIMESTEP\s+(\S+)", text, re.MULTILINE).group(1))


def quiet(fn, *args, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = fn(*args, **kw)
    return out, [str(w.message) for w in caught]


# ----------------------------------------------------------------------------- what CP2K 2023.1 writes
@pytest.mark.parametrize("key, ident", [("positions", b"CORD"), ("velocities", b"VEL ")])
def test_cp2k_dcd_layout(fixture_root, key, ident):
    """Header and frame records as motion_utils.F / particle_methods.F write them, read with struct."""
    d = fixture_root / "reference_dcd"
    path = d / f"md-{key[:3]}-1.dcd"
    head, cells, values = ref_dcd(path)
    abc, dt = input_abc_and_timestep(d / "seg000.inp")
    assert head["id"] == ident
    nset, istart, nsavc, *zeros6, delta = head["icntrl"][:10]
    assert (nset, istart, nsavc) == (0, 0, 1) and zeros6 == [0] * 6 and delta == dt == 2.0
    assert head["icntrl"][10:] == (1, 0, 0, 0, 0, 0, 0, 0, 0, 24)
    assert head["titles"][0].startswith(f"REMARK {ident.decode()} DCD file created by CP2K version 2023.1")
    assert head["titles"][1].startswith("REMARK ") and "@" in head["titles"][1]
    assert head["n_atoms"] == N_ATOMS
    assert head["record_lengths"] == [84, 164, 4] + [48, 4 * N_ATOMS, 4 * N_ATOMS, 4 * N_ATOMS] * (STEPS + 1)
    assert path.stat().st_size == HEADER_BYTES + (STEPS + 1) * FRAME_BYTES
    # cell record a, gamma, b, beta, alpha, c: lengths times the print's unit factor, angles in degrees
    box = abc if key == "positions" else abc / CP2K_BOHR_A
    np.testing.assert_allclose(cells, np.tile([box, 90.0, box, 90.0, 90.0, box], (STEPS + 1, 1)), rtol=1e-14)

    frames, header = read_dcd(path, dtype=np.float32)
    assert header["kind"] == key and header["id"] == ident.decode() and header["endian"] == "<"
    assert (header["nset"], header["istart"], header["nsavc"], header["delta"]) == (0, 0, 1, 2.0)
    assert header["has_cell"] and header["charmm_version"] == 24 and not header["synthetic"]
    assert header["titles"] == head["titles"] and header["n_frames"] == STEPS + 1
    assert (header["header_bytes"], header["frame_bytes"]) == (HEADER_BYTES, FRAME_BYTES)
    np.testing.assert_array_equal(frames, values)
    np.testing.assert_array_equal(header["cells"], cells)


def test_dcd_equals_the_xyz_of_the_same_run(fixture_root):
    """reference_dcd and reference_xyz are the same trajectory (identical .ener but for the timing column);
    DCD positions are CP2K's float32(float32(r_bohr) * float32(bohr in A)), velocities float32 bohr/au_t."""
    x, dd = fixture_root / "reference_xyz", fixture_root / "reference_dcd"
    np.testing.assert_array_equal(ref_ener(x / "md-1.ener")[:, :6], ref_ener(dd / "md-1.ener")[:, :6])
    symbols, steps, pos_xyz = ref_xyz(x / "md-pos-1.xyz")
    _, vsteps, vel_xyz = ref_xyz(x / "md-vel-1.xyz")
    np.testing.assert_array_equal(steps, np.arange(STEPS + 1))
    _, _, pos_dcd = ref_dcd(dd / "md-pos-1.dcd")
    _, _, vel_dcd = ref_dcd(dd / "md-vel-1.dcd")
    ulp = np.spacing(np.abs(pos_dcd))
    assert np.all(np.abs(pos_dcd - pos_xyz) <= 2 * ulp + 5e-11)  # seen: 1.55 ulp
    f = np.float32(CP2K_BOHR_A)
    model = (pos_xyz / CP2K_BOHR_A).astype(np.float32) * f
    assert np.mean(model == pos_dcd) > 0.99  # seen: all; XYZ's 10 decimals can straddle a float32 rounding
    # XYZ velocities have 10 decimals of ~1e-4 bohr/au_t: DCD's float32 is the finer of the two
    assert np.all(np.abs(vel_dcd - vel_xyz) <= 0.5e-10 + 0.5 * np.spacing(np.abs(vel_dcd)) + 1e-15)
    assert symbols_from_input(dd / "seg000.inp") == tuple(symbols)

    pos = read_dcd_run(dd, "positions")
    vel = read_dcd_run(dd, "velocities")
    assert pos.unit == "A" and vel.unit == "A/fs" and not pos.synthetic and not vel.synthetic
    assert pos.symbols == tuple(symbols) and pos.path.endswith("md-pos-1.dcd")
    np.testing.assert_array_equal(pos.step, np.arange(STEPS + 1))
    np.testing.assert_array_equal(vel.step, vsteps)
    np.testing.assert_array_equal(pos.time_fs, ref_ener(dd / "md-1.ener")[:, 1])
    np.testing.assert_array_equal(pos.values, pos_dcd.astype(np.float64))
    np.testing.assert_allclose(vel.values, vel_xyz * AU_VELOCITY_A_per_fs, rtol=0, atol=6e-11 * AU_VELOCITY_A_per_fs)


def test_dcd_is_a_fraction_of_the_xyz(fixture_root):
    xyz = (fixture_root / "reference_xyz" / "md-pos-1.xyz").stat().st_size
    dcd = (fixture_root / "reference_dcd" / "md-pos-1.dcd").stat().st_size
    assert dcd == HEADER_BYTES + (STEPS + 1) * FRAME_BYTES and xyz / dcd > 3.4  # 11 atoms; 65 vs 12 bytes per atom


# ----------------------------------------------------------------------------- kill and continuation
def seg000_ener_steps(run: Path, name: str) -> np.ndarray:
    """Steps of the .ener lines seg000 left (the file's first bytes_after_seg000 bytes)."""
    n = RECORD["runs"][name]["bytes_after_seg000"]["md-1.ener"]
    lines = (run / "md-1.ener").read_bytes()[:n].decode().splitlines()
    return np.array([int(ln.split()[0]) for ln in lines if ln.strip() and not ln.startswith("#")])


@pytest.mark.parametrize("name", ["restart", "restart_overlap"])
def test_continuation_appends_to_the_same_dcd(fixture_root, name):
    """EXT_RESTART appends frames: one header (ISTART, NSET untouched), the killed segment's frames are exactly
    those of its .ener lines at multiples of NSAVC, and the continuation's frames follow at multiples of NSAVC
    after the restart step (the print key counts the absolute MD step)."""
    run, rec = fixture_root / name, RECORD["runs"][name]
    every, k = rec["trajectory_every_steps"], rec["restart_step"]
    assert rec["kill"]["exit_status"] == -9
    e0 = seg000_ener_steps(run, name)
    for key in ("pos", "vel"):
        path = run / f"md-{key}-1.dcd"
        head, _, values = ref_dcd(path)
        assert head["icntrl"][:3] == (0, 0, every)
        assert head["record_lengths"][:3] == [84, 164, 4] and set(head["record_lengths"][3::4]) == {48}
        n0 = (rec["bytes_after_seg000"][path.name] - HEADER_BYTES) // FRAME_BYTES
        assert rec["bytes_after_seg000"][path.name] == HEADER_BYTES + n0 * FRAME_BYTES
        assert n0 == np.count_nonzero(e0 % every == 0)
        seg1 = np.arange((k // every + 1) * every, STEPS + 1, every)
        assert values.shape[0] == n0 + seg1.size
        expected = np.concatenate([e0[e0 % every == 0], seg1])
        steps = frame_steps(values.shape[0], read_dcd_header(path), ener_steps_in_file_order(run / "md-1.ener")[0],
                            values.astype(np.float64), path=path)  # fmt: skip
        np.testing.assert_array_equal(steps, expected)
    # the killed segment wrote exactly the uninterrupted run's frames (same input, seed, one rank)
    ref = (fixture_root / "reference_dcd" / "md-pos-1.dcd").read_bytes()
    got = (run / "md-pos-1.dcd").read_bytes()
    if every == 1:
        n0 = (rec["bytes_after_seg000"]["md-pos-1.dcd"] - HEADER_BYTES) // FRAME_BYTES
        assert got[: HEADER_BYTES + n0 * FRAME_BYTES] == ref[: HEADER_BYTES + n0 * FRAME_BYTES]


@pytest.mark.parametrize("name", ["restart", "restart_overlap"])
def test_killed_and_continued_dcd_merges_to_every_step_once(fixture_root, name):
    """The merged DCD holds every printed step exactly once and equals the uninterrupted run's XYZ, step by step."""
    run, rec = fixture_root / name, RECORD["runs"][name]
    every = rec["trajectory_every_steps"]
    _, _, xpos = ref_xyz(fixture_root / "reference_xyz" / "md-pos-1.xyz")
    _, _, xvel = ref_xyz(fixture_root / "reference_xyz" / "md-vel-1.xyz")
    want = np.arange(0, STEPS + 1, every)
    (pos, vel), warned = quiet(lambda: (read_dcd_run(run, "positions"), read_dcd_run(run, "velocities")))
    assert warned == []
    for traj in (pos, vel):
        np.testing.assert_array_equal(traj.step, want)
        np.testing.assert_array_equal(traj.time_fs, want * 2.0)
    np.testing.assert_allclose(pos.values, xpos[want], rtol=0, atol=RESTART_TOL_A)
    np.testing.assert_allclose(vel.values, xvel[want] * AU_VELOCITY_A_per_fs, rtol=0, atol=RESTART_TOL_A_per_fs)
    # before the kill: as the uninterrupted run to float32 rounding
    k = rec["restart_step"]
    early = want <= k
    assert np.all(np.abs(pos.values[early] - xpos[want][early]) <= 2 * np.spacing(np.abs(pos.values[early]).astype(np.float32)))


def test_restart_overlap_keeps_the_continuations_copy(fixture_root):
    run, rec = fixture_root / "restart_overlap", RECORD["runs"]["restart_overlap"]
    every, k = rec["trajectory_every_steps"], rec["restart_step"]
    e0 = seg000_ener_steps(run, "restart_overlap")
    repeated = [s for s in e0[e0 % every == 0] if s > k]
    assert repeated, "the fixture's kill left no frame after the restart step (regenerate)"
    raw, header = read_dcd(run / "md-pos-1.dcd")
    steps = frame_steps(raw.shape[0], header, ener_steps_in_file_order(run / "md-1.ener")[0], raw)
    pos = read_dcd_run(run, "positions")
    for s in repeated:
        first, later = np.flatnonzero(steps == s)
        np.testing.assert_array_equal(pos.values[pos.step == s][0], raw[later])
        assert np.abs(raw[first] - raw[later]).max() < RESTART_TOL_A  # two copies of one step
        assert np.abs(raw[first] - raw[first - 1]).max() > 100 * RESTART_TOL_A  # vs one stride of motion


def test_frame_lost_between_energy_line_and_frame(copy_run):
    """A kill between a step's .ener line and its frame (CP2K writes them in that order; not hit by the real
    kill, simulated by removing the killed segment's last frame): the continuation's copy fills the step."""
    run = copy_run("restart_overlap")
    rec = RECORD["runs"]["restart_overlap"]
    every = rec["trajectory_every_steps"]
    e0 = seg000_ener_steps(run, "restart_overlap")
    if e0[-1] % every:
        pytest.skip("the fixture's killed segment did not end on a frame step")
    ref = read_dcd_run(run, "positions")
    n0 = (rec["bytes_after_seg000"]["md-pos-1.dcd"] - HEADER_BYTES) // FRAME_BYTES
    for key in ("pos", "vel"):
        p = run / f"md-{key}-1.dcd"
        data = p.read_bytes()
        cut = HEADER_BYTES + (n0 - 1) * FRAME_BYTES
        p.write_bytes(data[:cut] + data[cut + FRAME_BYTES :])
    pos = read_dcd_run(run, "positions")
    np.testing.assert_array_equal(pos.step, ref.step)
    np.testing.assert_array_equal(pos.values, ref.values)


def test_run_dir_without_visible_boundary_refuses_a_missing_frame(copy_run):
    """restart: seg001 continues right after seg000's last .ener line (restart file at that step, written
    after its frames), so no frame can be missing there: one removed frame is an error, not a guess."""
    run = copy_run("restart")
    p = run / "md-pos-1.dcd"
    data = p.read_bytes()
    p.write_bytes(data[: HEADER_BYTES + 5 * FRAME_BYTES] + data[HEADER_BYTES + 6 * FRAME_BYTES :])
    with pytest.raises(ValueError, match=r"md-pos-1\.dcd: 20 DCD frames cannot be aligned with the 21 frame steps"):
        read_dcd_run(run, "positions")


def test_ambiguous_lost_frame_resolved_by_the_overlap(tmp_path):
    """Two killed segments, one lost frame: the alignment whose repeated steps agree wins (synthetic data
    from the mock writer: a smooth trajectory, the copies of a step equal to 1e-7)."""
    steps = [list(range(10)), list(range(8, 15)), list(range(13, 21))]  # segments: restart at 7, then at 12
    t = np.arange(21)[:, None, None]
    traj = np.sin(0.3 * t + np.arange(4)[None, :, None] + np.arange(3)[None, None, :]) * 2.0
    frames = np.concatenate([traj[s] + 1e-7 * i for i, s in enumerate(steps)])
    for n_segments in (1, 2):
        # lose the last frame of segment 0 (step 9), then of segment 1 (step 14)
        drop = sum(len(s) for s in steps[:n_segments]) - 1
        kept = np.delete(frames, drop, axis=0)
        header = {"istart": 0, "nsavc": 1}
        ener = np.concatenate([np.array(s) for s in steps])
        got = frame_steps(kept.shape[0], header, ener, kept)
        want = np.delete(ener, drop)
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="pass the frames"):
        frame_steps(kept.shape[0], header, ener)
    with pytest.raises(ValueError, match="accounts for only"):
        frame_steps(ener.size + 1, header, ener, np.concatenate([frames, frames[:1]]))
    with pytest.raises(ValueError, match="ISTART = 3"):
        frame_steps(3, {"istart": 3, "nsavc": 2}, ener, frames[:3])


def test_engine_path_cut_after_the_restart_step(copy_run):
    """Our engine cuts the shared files back to the restart step before a continuation (engines.file_cuts
    ``cut_after_step``): replay restart_overlap's seg000 state, cut its DCD with dcd_length_through_step
    (mapped by the .ener before it is cut), append seg001's real bytes: every step once, no overlap."""
    run = copy_run("restart_overlap")
    rec = RECORD["runs"]["restart_overlap"]
    k, every = rec["restart_step"], rec["trajectory_every_steps"]
    ener = run / "md-1.ener"
    n0 = rec["bytes_after_seg000"]["md-1.ener"]
    data = ener.read_bytes()
    ener.write_bytes(data[:n0])
    seg0_steps = ener_steps_in_file_order(ener)[0]
    ener_lines = data[:n0].decode().splitlines(keepends=True)
    ener.write_bytes("".join(ln for ln in ener_lines if ln.startswith("#") or int(ln.split()[0]) <= k).encode()
                     + data[n0:])  # fmt: skip
    for key in ("pos", "vel"):
        p = run / f"md-{key}-1.dcd"
        whole = p.read_bytes()
        b0 = rec["bytes_after_seg000"][p.name]
        p.write_bytes(whole[:b0])
        keep = dcd_length_through_step(p, seg0_steps, k)
        assert keep == HEADER_BYTES + (k // every + 1) * FRAME_BYTES
        p.write_bytes(whole[:keep] + whole[b0:])
    raw, header = read_dcd(run / "md-pos-1.dcd")
    steps = frame_steps(raw.shape[0], header, ener_steps_in_file_order(ener)[0], raw, last_segment_ended=True)
    np.testing.assert_array_equal(steps, np.arange(0, STEPS + 1, every))
    np.testing.assert_array_equal(read_dcd_run(run, "velocities").step, np.arange(0, STEPS + 1, every))


# ----------------------------------------------------------------------------- torn and corrupt files
def test_torn_last_frame_refused_dropped_and_trimmed(copy_run):
    run = copy_run("reference_dcd")
    p = run / "md-pos-1.dcd"
    whole = p.stat().st_size
    with open(p, "r+b") as fh:
        fh.truncate(whole - 100)
    offset = HEADER_BYTES + STEPS * FRAME_BYTES
    with pytest.raises(ValueError, match=rf"{re.escape(str(p))}: byte {offset}: DCD frame {STEPS} is torn \(112 of 212 bytes"):
        read_dcd(p)
    (frames, _), warned = quiet(read_dcd, p, partial="warn")
    assert frames.shape == (STEPS, N_ATOMS, 3) and len(warned) == 1 and f"byte {offset}" in warned[0]
    pos, warned = quiet(read_dcd_trajectory, p, run / "md-1.ener", symbols_from_input(run / "seg000.inp"))
    np.testing.assert_array_equal(pos.step, np.arange(STEPS))
    assert len(warned) == 1
    with pytest.raises(ValueError, match="20 DCD frames cannot be aligned"):
        quiet(read_dcd_run, run, "positions")  # seg000.out ended normally: no frame can be missing
    assert complete_dcd_length(p) == offset
    assert trim_dcd(p) == 112 and p.stat().st_size == offset and trim_dcd(p) == 0
    read_dcd(p)  # whole again


def test_torn_header_means_remove_the_file(copy_run):
    """A file cut inside its header must be removed, not emptied: CP2K writes the header only for a new file."""
    run = copy_run("reference_dcd")
    p = run / "md-vel-1.dcd"
    with open(p, "r+b") as fh:
        fh.truncate(200)
    with pytest.raises(ValueError, match=rf"{re.escape(str(p))}: byte 92: file ends inside the DCD header"):
        read_dcd(p)
    assert complete_dcd_length(p) == 0
    assert trim_dcd(p) == 200 and not p.exists()


def test_corrupt_frame_refused_naming_offset(copy_run):
    run = copy_run("reference_dcd")
    p = run / "md-pos-1.dcd"
    data = bytearray(p.read_bytes())
    bad = HEADER_BYTES + 5 * FRAME_BYTES + 56  # the x record's opening marker of frame 5
    data[bad : bad + 4] = struct.pack("<i", 40)
    p.write_bytes(bytes(data))
    msg = rf"{re.escape(str(p))}: byte {HEADER_BYTES + 5 * FRAME_BYTES}: DCD frame 5 has wrong record markers"
    with pytest.raises(ValueError, match=msg):
        read_dcd(p)
    with pytest.raises(ValueError, match=msg):
        complete_dcd_length(p)  # corruption is not trimmed away
    with pytest.raises(ValueError, match=msg):
        read_dcd_run(run, "positions")


def test_continuation_appended_onto_an_untrimmed_torn_frame_is_refused(copy_run, tmp_path):
    """Appending to a file whose torn frame was not trimmed shifts every later frame: the reader names the offset."""
    run = copy_run("reference_dcd")
    p = run / "md-pos-1.dcd"
    data = p.read_bytes()
    cut = HEADER_BYTES + 10 * FRAME_BYTES + 77
    p.write_bytes(data[:cut] + data[HEADER_BYTES + 11 * FRAME_BYTES :])
    with pytest.raises(ValueError, match=rf"byte {HEADER_BYTES + 10 * FRAME_BYTES}: DCD frame 10 has wrong record markers"):
        read_dcd(p)


def test_not_a_dcd(tmp_path):
    p = tmp_path / "md-pos-1.dcd"
    p.write_text("      11\n i = 0\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(p))}: byte 0: not a DCD file"):
        read_dcd(p)
    p.write_bytes(b"")
    with pytest.raises(ValueError, match="is empty"):
        read_dcd(p)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_dcd(tmp_path / "missing.dcd")


# ----------------------------------------------------------------------------- the mock writer
@pytest.mark.parametrize("name, key", [("reference_dcd", "positions"), ("reference_dcd", "velocities"),
                                       ("restart_overlap", "positions")])  # fmt: skip
def test_writer_is_byte_compatible_with_cp2k(fixture_root, tmp_path, name, key):
    src = fixture_root / name / f"md-{key[:3]}-1.dcd"
    frames, h = read_dcd(src, dtype=np.float32)
    header = dcd_header_bytes(key, h["n_atoms"], istart=h["istart"], nsavc=h["nsavc"], timestep_fs=h["delta"],
                              titles=h["titles"])  # fmt: skip
    raw = src.read_bytes()
    assert header == raw[:HEADER_BYTES]
    assert dcd_frames_bytes(frames, h["cells"]) == raw[HEADER_BYTES:]
    abc, dt = input_abc_and_timestep(fixture_root / name / "seg000.inp")
    np.testing.assert_allclose(cp2k_cell_record(key, abc), h["cells"][0], rtol=1e-15)
    # written as a first segment plus an appended continuation, as CP2K does
    out = tmp_path / src.name
    for part in (slice(0, 4), slice(4, None)):
        write_dcd(out, frames[part], kind=key, istart=h["istart"], nsavc=h["nsavc"], timestep_fs=dt,
                  cell=h["cells"][part], titles=h["titles"])  # fmt: skip
    assert out.read_bytes() == raw


def test_mock_dcd_is_labelled_synthetic(tmp_path, fixture_root):
    run = tmp_path / "run"
    shutil.copytree(fixture_root / "reference_dcd", run)
    rng = np.random.default_rng(0)
    values = rng.normal(size=(STEPS + 1, N_ATOMS, 3)) + 12.0
    p = run / "md-pos-1.dcd"
    p.unlink()
    write_dcd(p, values, kind="positions", istart=0, nsavc=1, timestep_fs=2.0, cell=cp2k_cell_record("positions", 25.87))
    h = read_dcd_header(p)
    assert h["synthetic"] and h["titles"] == list(mock_titles("positions"))
    assert "synthetic (mock engine)" in h["titles"][1]
    traj = read_dcd_trajectory(p, run / "md-1.ener", symbols_from_input(run / "seg000.inp"))
    assert traj.synthetic and traj.unit == "A"
    np.testing.assert_array_equal(traj.values, values.astype(np.float32))
    assert read_dcd_run(run, "positions").synthetic and not read_dcd_run(run, "velocities").synthetic
    with pytest.raises(ValueError, match="11 atoms in the DCD header but 3 symbols"):
        read_dcd_trajectory(p, run / "md-1.ener", ("Cs", "Pb", "Br"))


def test_velocity_unit_checked_from_the_cell_records(copy_run):
    """CP2K scales the cell record with the print's unit: velocities printed in another UNIT are refused."""
    run = copy_run("reference_dcd")
    p = run / "md-vel-1.dcd"
    frames, h = read_dcd(p, dtype=np.float32)
    p.unlink()
    write_dcd(p, frames * 21.877, kind="velocities", istart=0, nsavc=1, timestep_fs=2.0, cell=h["cells"] * 21.877,
              titles=h["titles"])  # fmt: skip
    with pytest.raises(ValueError, match=r"md-vel-1\.dcd: velocities written in a unit 21\.877 x bohr/au_time"):
        read_dcd_run(run, "velocities")
    p = run / "md-pos-1.dcd"
    frames, h = read_dcd(p, dtype=np.float32)
    p.unlink()
    write_dcd(p, frames / CP2K_BOHR_A, kind="positions", istart=0, nsavc=1, timestep_fs=2.0,
              cell=h["cells"] / CP2K_BOHR_A, titles=h["titles"])  # fmt: skip
    with pytest.raises(ValueError, match=r"md-pos-1\.dcd: positions written in a unit 1\.88973 x Angstrom"):
        read_dcd_run(run, "positions")


def test_symbols_and_cell_of_a_hand_written_input_are_read_by_cp2k_input_tools(tmp_path):
    """The DCD reader's symbols and cell come from the input parsed as CP2K does (a ``[bohr]`` ABC
    converted, comments and the SCALED keyword skipped), not from a pattern over its text; an input
    that does not parse is a ValueError naming the file."""
    from qdphonon.cp2k.readback import read_subsys

    inp = tmp_path / "hand.inp"
    inp.write_text("&GLOBAL\n  PROJECT hand\n  RUN_TYPE MD\n&END GLOBAL\n&FORCE_EVAL\n  &SUBSYS\n    &CELL\n"
                   "      ABC [bohr] 20.0 20.0 20.0\n    &END CELL\n    &COORD\n      ! a comment\n      SCALED F\n"
                   "      Cs 0.0 0.0 0.0\n      Br 3.0 0.0 0.0   # trailing\n    &END COORD\n  &END SUBSYS\n"
                   "&END FORCE_EVAL\n")  # fmt: skip
    symbols, abc = read_subsys(inp)
    assert symbols == ["Cs", "Br"] and symbols_from_input(inp) == ("Cs", "Br")
    assert abc == pytest.approx([20.0 * CP2K_BOHR_A] * 3, rel=1e-7)  # its bohr differs from CP2K's by 4e-9
    bad = tmp_path / "bad.inp"
    bad.write_text("&GLOBAL\n  NO_SUCH_KEYWORD 1\n&END GLOBAL\n")
    with pytest.raises(ValueError, match="bad.inp: not a CP2K input"):
        read_subsys(bad)
