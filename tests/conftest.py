"""Shared fixtures. Real-component tests (CP2K, SLURM) fail in CI when the component is
missing (CI sets CI=true); elsewhere they skip with the reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import slurm_helpers

slurm_cluster = pytest.fixture(scope="session")(slurm_helpers.slurm_cluster_fixture)

REPO = Path(__file__).resolve().parents[1]
IN_CI = bool(os.environ.get("CI"))


def require_executable(name: str, install_hint: str) -> str:
    """Path of an executable; missing -> fail in CI, skip elsewhere."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not found on PATH ({install_hint})"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cp2k_exe() -> str:
    """Debian's CP2K (cp2k.psmp); fails in CI when missing."""
    return require_executable("cp2k.psmp", "apt-get install cp2k openmpi-bin")


@pytest.fixture(autouse=True)
def _cp2k_as_root(monkeypatch):
    """OpenMPI refuses to run as root (CI does) without these; one rank, one BLAS thread."""
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT", "1")
    monkeypatch.setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1")
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
