"""The command line's ``relax`` and ``check``: what they write and print, and how they fail.

Expected values come from the files themselves (read here with hashlib, ase and regular expressions) and
from the trees the tests write by hand; ``relax`` with the cp2k engine runs Debian's CP2K 2023.1 (GFN1-xTB
Cs4PbBr6, ~2 s).
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from qdphonon.structures.build import build_quantum_dot
from qdphonon.structures.io import write_structure
from qdphonon.structures.model import QuantumDotSpec

from test_status import run_json

MISSING_KIND = '{"force_eval": {"subsys": {"kind": [{"_": "Br", "element": "Br", "basis_set": "SZV-MOLOPT-SR-GTH", "potential": "GTH-PBE-q7"}]}}}'
"""PBE overrides whose KIND list names Br only: CP2K 2023.1 aborts at start-up for Cs."""


def qdphonon(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qdphonon", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture
def ideal(tmp_path) -> Path:
    xyz = tmp_path / "ideal.xyz"
    write_structure(build_quantum_dot(QuantumDotSpec(size=(1, 1, 1))), xyz)
    return xyz


# --- relax ---------------------------------------------------------------------------------------

@pytest.mark.cp2k
def test_relax_writes_cp2k_s_last_geometry_with_the_labels(tmp_path, ideal, cp2k_exe):
    out = tmp_path / "relaxed.xyz"
    res = qdphonon("relax", "--structure", str(ideal), "--engine", "cp2k", "--level", "xtb",
                   "--workdir", str(tmp_path / "w"), "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    relax_out = (tmp_path / "w" / "relax.out").read_text()
    assert "GEOMETRY OPTIMIZATION COMPLETED" in relax_out
    import ase.io

    last = ase.io.read(tmp_path / "w" / "relax-pos-1.xyz", index=-1, format="xyz").positions
    box = float(re.search(r'Lattice="(\S+)', ideal.read_text().splitlines()[1]).group(1))
    expected = last + 0.5 * box - 0.5 * (last.min(axis=0) + last.max(axis=0))  # recentred in the box
    written = [ln.split() for ln in out.read_text().splitlines()[2:]]
    source = [ln.split() for ln in ideal.read_text().splitlines()[2:]]
    np.testing.assert_allclose([[float(x) for x in w[1:4]] for w in written], expected, atol=1e-8)
    assert [w[0] for w in written] == [s[0] for s in source]
    assert [w[4:] for w in written] == [s[4:] for s in source]  # region and layer labels kept
    comment = out.read_text().splitlines()[1]
    assert "relaxed=cp2k-xtb" in comment and "relax_converged=T" in comment
    summary = json.loads((tmp_path / "w" / "relax.json").read_text())
    assert summary["converged"] is True and summary["cp2k_version"] == "2023.1"
    energies = re.findall(r"E =\s*(\S+)", (tmp_path / "w" / "relax-pos-1.xyz").read_text())
    assert summary["final_energy_Ha"] == float(energies[-1])


def test_relax_mock_passes_the_structure_through(tmp_path, ideal):
    out = tmp_path / "r.xyz"
    res = qdphonon("relax", "--structure", str(ideal), "--engine", "mock", "--level", "xtb",
                   "--workdir", str(tmp_path / "w"), "--out", str(out))  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert out.read_text().splitlines()[2:] == ideal.read_text().splitlines()[2:]
    assert 'relaxed="none (mock engine)"' in out.read_text().splitlines()[1]


@pytest.mark.parametrize("args, status, words", [
    (["--cp2k-command", "no-such-cp2k"], 1, ["qdphonon relax: error:", "no-such-cp2k", "not found on PATH"]),
    (["--overrides-json", "{not json"], 2, ["--overrides-json", "not JSON"]),
    (["--overrides-json", "[1, 2]"], 2, ["--overrides-json", "must be a JSON object"]),
    (["--engine", "gaussian"], 2, ["--engine", "invalid choice"]),
    (["--level", "b3lyp"], 2, ["--level", "invalid choice"]),
])  # fmt: skip
def test_relax_refuses_bad_arguments_without_writing(tmp_path, ideal, args, status, words):
    out = tmp_path / "r.xyz"
    res = qdphonon("relax", "--structure", str(ideal), "--engine", "cp2k", "--level", "xtb",
                   "--workdir", str(tmp_path / "w"), "--out", str(out), *args)  # fmt: skip
    assert res.returncode == status, res.stderr
    assert all(w in res.stderr for w in words), res.stderr
    assert not out.exists()


def test_relax_of_a_missing_structure_names_it(tmp_path):
    res = qdphonon("relax", "--structure", str(tmp_path / "nowhere.xyz"), "--engine", "mock", "--level", "xtb",
                   "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "r.xyz"))  # fmt: skip
    assert res.returncode == 1 and "qdphonon relax: error:" in res.stderr and "nowhere.xyz" in res.stderr
    assert not (tmp_path / "r.xyz").exists()


@pytest.mark.cp2k
def test_relax_reports_cp2k_s_abort(tmp_path, ideal, cp2k_exe):
    out = tmp_path / "r.xyz"
    res = qdphonon("relax", "--structure", str(ideal), "--engine", "cp2k", "--level", "pbe",
                   "--workdir", str(tmp_path / "w"), "--out", str(out), "--overrides-json", MISSING_KIND)  # fmt: skip
    assert res.returncode == 1
    abort = re.search(r"\[ABORT\]\s+(.*?)\s*\*\s*$", (tmp_path / "w" / "relax.out").read_text(), re.MULTILINE)
    phrase = abort.group(1).rstrip(".")  # CP2K's own words
    assert phrase.startswith("No &KIND section") and phrase in res.stderr
    assert "qdphonon relax: error: CP2K geometry optimisation failed" in res.stderr and not out.exists()


# --- check ---------------------------------------------------------------------------------------

SYSTEMS = ("cspbbr3_1x1x1", "cspbbr3_2x2x2")
HEADER = "system\tconfig\tstructure\treplica\tinput\tengine\tcp2k\tcomplete\twarnings"


def write_config(path: Path) -> Path:
    path.write_text(yaml.safe_dump({"systems": [{"size": [1, 1, 1]}, {"size": [2, 2, 2]}], "engine": "cp2k",
                                    "md": {"replicas": 2}}))  # fmt: skip
    return path


def write_results(root: Path, system: str, *, complete: bool) -> dict[str, str]:
    """A results tree of one system written by hand (contents arbitrary, hashes computed here; run.json is the
    shipped real one's, which ``check`` reads as a typed record)."""
    sha = {}
    (root / "structures").mkdir(parents=True, exist_ok=True)
    structure = root / "structures" / f"{system}.xyz"
    structure.write_text(f"structure of {system}\n")
    sha["structure"] = hashlib.sha256(structure.read_bytes()).hexdigest()
    for replica in ("r0", "r1"):
        inp = root / "cp2k" / system / replica / "md.inp"
        inp.parent.mkdir(parents=True, exist_ok=True)
        inp.write_text(f"&GLOBAL ! {system} {replica}\n&END GLOBAL\n")
        sha[replica] = hashlib.sha256(inp.read_bytes()).hexdigest()
        run = root / "aimd" / system / replica / "run.json"
        run.parent.mkdir(parents=True, exist_ok=True)
        run_json(run.parent, [{"index": 0, "input": "seg000.inp", "output": "seg000.out", "start_step": 0,
                               "end_step": 100, "ended": "completed", "wall_s": 1.0}])  # fmt: skip
        edges = root / "band_edges" / system / f"{replica}.csv"
        edges.parent.mkdir(parents=True, exist_ok=True)
        edges.write_text("step,time_fs,vbm_eV,cbm_eV\n")
    if complete:
        analysis = root / "analysis" / system
        analysis.mkdir(parents=True, exist_ok=True)
        for name in ("spectral_density.csv", "linewidth.json", "vdos.csv"):
            (analysis / name).write_text("x\n")
    return sha


def table(stdout: str) -> list[list[str]]:
    lines = stdout.strip("\n").split("\n")
    assert lines[0] == HEADER
    return [ln.split("\t") for ln in lines[1:]]


def test_check_prints_one_row_per_replica_with_the_file_hashes(tmp_path):
    config = write_config(tmp_path / "config.yaml")
    results = tmp_path / "results"
    sha = {SYSTEMS[0]: write_results(results, SYSTEMS[0], complete=True),
           SYSTEMS[1]: write_results(results, SYSTEMS[1], complete=False)}  # fmt: skip
    res = qdphonon("check", "--results", str(results), "--configfile", str(config), cwd=tmp_path)
    assert res.returncode == 3, res.stderr  # not every system complete
    rows = table(res.stdout)
    assert [(r[0], r[3]) for r in rows] == [(s, rep) for s in SYSTEMS for rep in ("r0", "r1")]
    for system, _, structure, replica, inp, engine, cp2k, complete, warned in rows:
        assert structure == sha[system]["structure"][:12] and inp == sha[system][replica][:12]
        assert (engine, cp2k) == ("cp2k", "2023.1")
        assert complete == ("yes" if system == SYSTEMS[0] else "no")
    configs = {r[0]: r[1] for r in rows}
    assert all(re.fullmatch(r"[0-9a-f]{12,64}", c) for c in configs.values())
    assert configs[SYSTEMS[0]] != configs[SYSTEMS[1]]  # each system's settings hash
    as_json = qdphonon("check", "--results", str(results), "--configfile", str(config), "--json", cwd=tmp_path)
    assert as_json.returncode == 3
    parsed = {r["system"]: r for r in json.loads(as_json.stdout)}
    assert {s: r["config_sha"] for s, r in parsed.items()} == configs
    assert parsed[SYSTEMS[1]]["replicas"][0]["input_sha256"] == sha[SYSTEMS[1]]["r0"]

    for name in ("spectral_density.csv", "linewidth.json", "vdos.csv"):  # finish the second system
        (results / "analysis" / SYSTEMS[1]).mkdir(parents=True, exist_ok=True)
        (results / "analysis" / SYSTEMS[1] / name).write_text("x\n")
    done = qdphonon("check", "--results", str(results), "--configfile", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert [r[-2] for r in table(done.stdout)] == ["yes"] * 4


def test_check_of_an_empty_tree_lists_every_replica_as_missing(tmp_path):
    (tmp_path / "nothing").mkdir()
    res = qdphonon("check", "--results", str(tmp_path / "nothing"), "--configfile", str(write_config(tmp_path / "c.yaml")),
                   cwd=tmp_path)
    assert res.returncode == 3
    rows = table(res.stdout)
    assert len(rows) == 4 and all(r[2] == r[4] == r[5] == r[6] == "-" and r[7] == "no" for r in rows)


@pytest.mark.parametrize("config_text, words", [
    (None, ["qdphonon check: error:", "missing.yaml"]),
    ("systems:\n  - size: [1, 1, 1]\nbogus: 1\n", ["bogus"]),
    ("systems: [\n", ["qdphonon check: error:", "config.yaml:2"]),
])  # fmt: skip
def test_check_refuses_a_missing_or_invalid_config(tmp_path, config_text, words):
    config = tmp_path / "missing.yaml"
    if config_text is not None:
        config = tmp_path / "config.yaml"
        config.write_text(config_text)
    res = qdphonon("check", "--results", str(tmp_path), "--configfile", str(config), cwd=tmp_path)
    assert res.returncode == 1 and res.stdout == ""
    assert all(w in res.stderr for w in words), res.stderr[-2000:]


def test_check_names_the_bad_key_briefly(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("systems:\n  - size: [1, 1, 1]\nbogus: 1\n")
    res = qdphonon("check", "--results", str(tmp_path), "--configfile", str(config), cwd=tmp_path)
    assert res.returncode == 1 and len(res.stderr.splitlines()) <= 5 and "bogus" in res.stderr
