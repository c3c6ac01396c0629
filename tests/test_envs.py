"""The conda environments in envs/ against what conda-forge publishes (static: no network).

The facts below were read from conda-forge's feedstock git histories (``git log``,
``git show <commit>:recipe/meta.yaml``, ``recipe/conda_build_config.yaml``,
``.ci_support/*.yaml``); envs/README.md gives them with the commits they come from.
"""

from __future__ import annotations

import ast
import fnmatch
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "envs"
RULES = ROOT / "workflow" / "rules"
PACKAGE = ROOT / "workflow" / "qdphonon"

# CP2K versions conda-forge published: every `version` of recipe/meta.yaml (recipe/recipe.yaml
# from ac37b98) in conda-forge/cp2k-feedstock's history (snapshot 6c17355, 2026-06-16):
# 6.1.0 ba43794, 7.1.0 c46cfb0, 8.1.0 1393613, 8.2.0 260a0c4, 9.1.0 0b7ff26,
# 2023.2 2f93b7b, 2024.1 8a63e92, 2024.2 9d24324, 2026.1 02bb430. No 2023.1, no 2025.x.
CONDA_FORGE_CP2K_VERSIONS = ("6.1.0", "7.1.0", "8.1.0", "8.2.0", "9.1.0", "2023.2", "2024.1", "2024.2", "2026.1")

# Build strings as the recipe forms them, one made-up hash each, with the binaries they ship.
# 2023.2 (2f93b7b): "{blas_impl}_{mpi}_py{CONDA_PY}h{PKG_HASH}_{PKG_BUILDNUM}", mpi in
# [openmpi, nompi], blas_impl in [openblas, mkl], openmpi+mkl skipped, nompi build number +1000;
# build.sh: MPI -> cp2k.psmp, nompi -> cp2k.ssmp. 2024.x (2016ff2 on): the same without "py310".
# 2026.1 from build 6 (c95f503): "mpi_{mpi}_h{hash}_{build_number}", mpi in [mpich, openmpi].
CP2K_BUILDS = {
    "2023.2": {
        "openblas_openmpi_py310h0123abc_0": {"cp2k.psmp"},
        "openblas_nompi_py310h0123abc_1000": {"cp2k.ssmp"},
        "mkl_nompi_py310h0123abc_1000": {"cp2k.ssmp"},
    },
    "2024.1": {
        "openblas_openmpi_h0123abc_2": {"cp2k.psmp"},
        "openblas_nompi_h0123abc_1002": {"cp2k.ssmp"},
        "mkl_nompi_h0123abc_1002": {"cp2k.ssmp"},
    },
    "2024.2": {
        "openblas_openmpi_h0123abc_0": {"cp2k.psmp"},
        "openblas_nompi_h0123abc_1000": {"cp2k.ssmp"},
        "mkl_nompi_h0123abc_1000": {"cp2k.ssmp"},
    },
    "2026.1": {
        "mpi_openmpi_h0123abc_13": {"cp2k.psmp", "cp2k"},
        "mpi_mpich_h0123abc_13": {"cp2k.psmp", "cp2k"},
    },
}
# OpenMPI major each CP2K's openmpi build was made against: `openmpi:` in
# .ci_support/linux_64_blas_implopenblasmpiopenmpi.yaml (2f93b7b, 8a63e92, fa8404d, 8222f9c),
# .ci_support/linux_64_hdf52mpiopenmpi.yaml (6c17355).
CP2K_OPENMPI_MAJOR = {"2023.2": "4", "2024.1": "4", "2024.2": "4", "2026.1": "5"}

# Versions of the other packages seen in their conda-forge feedstocks with a linux-64 Python 3.11
# build (or noarch); the snapshots are older than some PyPI releases, so this is a lower bound.
CONDA_FORGE_VERSIONS = {
    "python": ("3.11",),
    "pip": (),  # unpinned
    "numpy": ("2.4.6",),  # numpy-feedstock v2.4.x 8835fee (2.5.x: no Python 3.11)
    "scipy": ("1.17.0", "1.17.1"),  # scipy-feedstock 33d5121 (1.18.0: no Python 3.11)
    "pandas": ("3.0.0", "3.0.1", "3.0.2", "3.0.3"),  # pandas-feedstock 828eb7f
    "matplotlib-base": ("3.11.0",),  # matplotlib-feedstock eae71bf
    "ase": ("3.27.0", "3.28.0"),  # ase-feedstock 88c3c44, noarch
    "pymatgen": ("2025.6.14", "2025.10.7"),  # pymatgen-feedstock dc3a6a3
    "pyyaml": ("6.0.2", "6.0.3"),  # pyyaml-feedstock eaba673
    "jsonschema": ("4.25.1", "4.26.0"),  # jsonschema-feedstock bf336d5, noarch
    "phonopy": ("2.47.1",),  # phonopy-feedstock 008be50 (the package is tested with PyPI 4.10)
    "openmpi": ("4.1.4", "4.1.5", "4.1.6", "4.1.7", "5.0.8", "5.0.10"),  # openmpi-feedstock
    "cp2k": CONDA_FORGE_CP2K_VERSIONS,
}
# conda-forge's cp2k-input-tools stops at 0.8.2 (cp2k-input-tools-feedstock 8cb25bd, pydantic<2):
# the 0.9.3 the package uses must come from PyPI.
CONDA_FORGE_CP2K_INPUT_TOOLS = ("0.8.2",)
PYPI_CP2K_INPUT_TOOLS = "0.9.3"

# What each `python -m qdphonon SUBCOMMAND` a rule runs needs (conda or pip names). Every
# subcommand builds the whole parser, whose defaults come from the YAML schema: pyyaml always.
BASE = {"python", "pyyaml"}
NEEDS = {
    "build": BASE | {"numpy"},
    "cp2k-input": BASE | {"numpy", "cp2k-input-tools", "cp2k"},  # validated by `cp2k.psmp --xml`
    "relax": BASE | {"numpy", "cp2k-input-tools", "cp2k", "openmpi"},
    "run-aimd": BASE | {"numpy", "cp2k-input-tools", "cp2k", "openmpi"},
    "parse-cp2k": BASE | {"numpy", "pandas"},
    "reevaluate": BASE | {"numpy", "pandas", "ase", "cp2k-input-tools", "cp2k", "openmpi"},
    "analyze": BASE | {"numpy", "scipy", "pandas", "ase"},
    "summarize": BASE | {"pandas"},
    "plot": BASE | {"numpy", "pandas", "matplotlib-base"},
    "report-pages": BASE | {"pandas"},
    "attribute": BASE | {"numpy", "scipy", "pandas", "ase"},
    "plot-claims": BASE | {"numpy", "pandas", "matplotlib-base"},
    "harmonic-run": BASE | {"numpy", "cp2k-input-tools", "cp2k", "openmpi", "ase"},
    "harmonic-analyze": BASE | {"numpy", "scipy", "pandas", "ase", "phonopy"},
    "compare-routes": BASE | {"numpy", "pandas", "matplotlib-base"},
    "localise": BASE | {"numpy", "pandas", "ase"},
    "anharmonicity": BASE | {"numpy", "scipy", "pandas"},
    "plot-anharmonicity": BASE | {"numpy", "pandas", "matplotlib-base"},
}
# What each env is for beyond its rules' imports (envs/README.md).
ENV_EXTRAS = {"structures": {"pymatgen"}, "cp2k": {"jsonschema"}, "analysis": set()}
# Import name -> package, for every third-party module the package imports; None: not used by
# a rule (snakemake: only `qdphonon check`, run from the install).
IMPORTS = {
    "numpy": "numpy", "pandas": "pandas", "scipy": "scipy", "matplotlib": "matplotlib-base",
    "ase": "ase", "pymatgen": "pymatgen", "yaml": "pyyaml", "cp2k_input_tools": "cp2k-input-tools",
    "jsonschema": "jsonschema", "snakemake": None, "phonopy": "phonopy",
}

TESTED_CP2K = "2023.1"  # Debian bookworm's cp2k, installed by tests/run.sh; fixtures tests/data/cp2k-2023.1


# --- reading the files ----------------------------------------------------------------------
SPEC = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<rest>.*)$")


def load_env(name: str) -> dict:
    return yaml.safe_load((ENVS / f"{name}.yaml").read_text())


def conda_specs(env: dict) -> dict[str, str]:
    """name -> constraint text ('' when unpinned) of the conda dependencies."""
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, str):
            m = SPEC.match(dep.strip())
            assert m, dep
            out[m["name"].lower()] = m["rest"].strip()
    return out


def pip_specs(env: dict) -> dict[str, str]:
    out = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict) and "pip" in dep:
            for req in dep["pip"]:
                m = re.match(r"^([A-Za-z0-9_.\-]+)\s*(.*)$", req.strip())
                out[m[1].lower()] = m[2].strip()
    return out


def split_build(rest: str) -> tuple[str, str | None]:
    """'=2023.2=*openmpi*' -> ('=2023.2', '*openmpi*'); other constraints have no build part."""
    m = re.fullmatch(r"=([^=<>!,\s]+)=(\S+)", rest)
    return (f"={m[1]}", m[2]) if m else (rest, None)


def admits(constraint: str, version: str) -> bool:
    """Whether a conda version constraint (``=X`` fuzzy, ``==X``, comparisons joined by ``,``)
    admits ``version``."""
    constraint = constraint.replace(" ", "")
    if not constraint or constraint == "*":
        return True
    if constraint.startswith("==") and not re.search(r"[,<>]", constraint):
        return version == constraint[2:]
    if constraint.startswith("=") and not constraint.startswith("=="):
        prefix = constraint[1:].rstrip("*").rstrip(".")
        return version == prefix or version.startswith(prefix + ".")
    ops = {">=": Version.__ge__, "<=": Version.__le__, ">": Version.__gt__, "<": Version.__lt__,
           "==": Version.__eq__, "!=": Version.__ne__}
    for part in constraint.split(","):
        m = re.fullmatch(r"(>=|<=|>|<|==|!=)(.+)", part)
        assert m, f"constraint not understood: {constraint!r}"
        if not ops[m[1]](Version(version), Version(m[2])):
            return False
    return True


def rules() -> dict[str, dict]:
    """rule name -> {'env': envs/ file stem, 'subcommand': qdphonon subcommand} from the .smk files."""
    out = {}
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            name = block.split(":", 1)[0].strip()
            env = re.search(r"^\s+conda:\s*\n\s+\"\.\./\.\./envs/([\w-]+)\.yaml\"", block, re.M)
            sub = re.search(r"python -m qdphonon ([\w-]+)", block)
            if env and sub:
                out[name] = {"env": env[1], "subcommand": sub[1]}
    return out


ENV_NAMES = sorted(p.stem for p in ENVS.glob("*.yaml"))


# --- the tests ------------------------------------------------------------------------------
def test_the_three_envs_exist():
    assert ENV_NAMES == ["analysis", "cp2k", "structures"]


@pytest.mark.parametrize("name", ENV_NAMES)
def test_channels_are_conda_forge_only(name):
    channels = load_env(name)["channels"]
    assert channels[0] == "conda-forge"
    assert "defaults" not in channels and set(channels) <= {"conda-forge", "nodefaults"}
    assert "nodefaults" in channels  # or a user's .condarc can add defaults back


@pytest.mark.parametrize("name", ENV_NAMES)
def test_every_conda_pin_admits_a_version_conda_forge_published(name):
    specs = conda_specs(load_env(name))
    for pkg, rest in specs.items():
        assert pkg in CONDA_FORGE_VERSIONS, f"{name}.yaml: {pkg} is not a conda-forge package checked here"
        constraint, _ = split_build(rest)
        seen = CONDA_FORGE_VERSIONS[pkg]
        if not seen:
            assert constraint == "", f"{name}.yaml: {pkg} is pinned but no version of it was checked"
            continue
        assert any(admits(constraint, v) for v in seen), (
            f"{name}.yaml: {pkg}{rest} admits none of the versions conda-forge is known to publish {seen}")
    assert specs.get("python") == "=3.11"


def test_cp2k_is_a_published_version_with_an_openmpi_build():
    spec = conda_specs(load_env("cp2k"))["cp2k"]
    constraint, build = split_build(spec)
    versions = [v for v in CONDA_FORGE_CP2K_VERSIONS if admits(constraint, v)]
    assert versions, f"cp2k{spec}: conda-forge never published such a version"
    assert constraint.startswith("=") and len(versions) == 1, f"cp2k{spec}: pin one version"
    (version,) = versions
    assert version != TESTED_CP2K  # Debian's 2023.1 is not on conda-forge
    assert build is not None and "openmpi" in build, (
        f"cp2k{spec}: without an openmpi build selector the solver picks the nompi build (no cp2k.psmp)")
    builds = CP2K_BUILDS[version]
    chosen = {b: bins for b, bins in builds.items() if fnmatch.fnmatchcase(b, build)}
    assert chosen, f"cp2k{spec}: the selector matches no build of {version}"
    assert all("cp2k.psmp" in bins for bins in chosen.values()), chosen
    assert all("openmpi" in b for b in chosen), chosen


def test_openmpi_is_the_major_cp2k_was_built_against():
    specs = conda_specs(load_env("cp2k"))
    version = next(v for v in CONDA_FORGE_CP2K_VERSIONS if admits(split_build(specs["cp2k"])[0], v))
    major = CP2K_OPENMPI_MAJOR[version]
    admitted = {v.split(".")[0] for v in CONDA_FORGE_VERSIONS["openmpi"] if admits(specs["openmpi"], v)}
    assert admitted == {major}, f"openmpi{specs['openmpi']} for cp2k {version} (built with OpenMPI {major})"


def test_cp2k_input_tools_comes_from_pypi_at_the_version_the_package_uses():
    env = load_env("cp2k")
    assert "cp2k-input-tools" not in conda_specs(env)  # conda-forge: 0.8.2 only
    assert PYPI_CP2K_INPUT_TOOLS not in CONDA_FORGE_CP2K_INPUT_TOOLS
    assert pip_specs(env)["cp2k-input-tools"] == f"=={PYPI_CP2K_INPUT_TOOLS}"
    assert "pip" in conda_specs(env)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert f'"cp2k-input-tools=={PYPI_CP2K_INPUT_TOOLS}"' in pyproject


@pytest.mark.parametrize("name", ENV_NAMES)
def test_env_holds_what_its_rules_need(name):
    env = load_env(name)
    have = set(conda_specs(env)) | set(pip_specs(env))
    users = {r: info for r, info in rules().items() if info["env"] == name}
    assert users, f"no rule uses envs/{name}.yaml"
    for rule, info in users.items():
        missing = NEEDS[info["subcommand"]] - have
        assert not missing, f"rule {rule} (qdphonon {info['subcommand']}) runs in {name}.yaml, which lacks {missing}"
    assert ENV_EXTRAS[name] <= have


def test_every_rule_runs_in_an_env_and_cp2k_rules_in_the_cp2k_env():
    found = rules()
    assert {i["subcommand"] for i in found.values()} == set(NEEDS)
    for rule, info in found.items():
        assert info["env"] in ENV_NAMES, rule
        if "cp2k" in NEEDS[info["subcommand"]]:  # an input is validated by the CP2K that runs it
            assert info["env"] == "cp2k", f"rule {rule} writes or runs CP2K input but runs in envs/{info['env']}.yaml"


def test_every_third_party_import_is_mapped():
    """A new dependency of the package must be placed in the envs (and in NEEDS above)."""
    stdlib = set(sys.stdlib_module_names)
    seen = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                seen |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                seen.add(node.module.split(".")[0])
    third_party = seen - stdlib - {"qdphonon", "__future__"}
    unmapped = third_party - set(IMPORTS)
    assert not unmapped, f"imports not mapped to an env package: {sorted(unmapped)}"
    in_envs = set().union(*(set(conda_specs(load_env(n))) | set(pip_specs(load_env(n))) for n in ENV_NAMES))
    for module in third_party:
        if IMPORTS[module] is not None:
            assert IMPORTS[module] in in_envs, f"{module} ({IMPORTS[module]}) is in no env"


def _statement(text: str, label: str) -> str:
    m = re.search(rf"^{label}: (.+)$", text, re.M)
    assert m, f"envs/README.md has no '{label}:' line"
    return m[1]


def test_readme_states_the_tested_and_expected_cp2k_versions():
    text = (ENVS / "README.md").read_text()
    tested = re.findall(r"\d{4}\.\d", _statement(text, "Tested here"))
    assert tested == [TESTED_CP2K]
    assert (ROOT / "tests" / "data" / f"cp2k-{TESTED_CP2K}").is_dir()  # the fixtures' CP2K
    expected = re.findall(r"\d{4}\.\d", _statement(text, "Expected to work"))
    assert expected and set(expected) <= set(CONDA_FORGE_CP2K_VERSIONS)
    pinned = split_build(conda_specs(load_env("cp2k"))["cp2k"])[0].lstrip("=")
    assert pinned in expected
    assert "IGNORE_CONVERGENCE_FAILURE" in text
    main_readme = (ROOT / "README.md").read_text()
    quick_start = main_readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert TESTED_CP2K in quick_start and pinned in quick_start


def test_admits_reads_conda_constraints():
    """The checks above can fail: the old pin and an unpinned cp2k are rejected."""
    assert not any(admits("=2023.1", v) for v in CONDA_FORGE_CP2K_VERSIONS)
    assert admits("=2023.2", "2023.2") and not admits("=2023.2", "2023.21")
    assert admits("=4", "4.1.6") and not admits("=4", "5.0.8")
    assert admits(">=3.0.3,<3.2", "3.0.3") and not admits(">=3.0.3,<3.2", "3.2.0")
    assert split_build("=2023.2=*openmpi*") == ("=2023.2", "*openmpi*")
    assert split_build("") == ("", None)
    nompi = [b for b in CP2K_BUILDS["2023.2"] if fnmatch.fnmatchcase(b, "*")]
    assert any("cp2k.psmp" not in CP2K_BUILDS["2023.2"][b] for b in nompi)  # unpinned: may be serial
