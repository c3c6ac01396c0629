#!/usr/bin/env bash
# The test command (README quick start, .ci/run): installs what the tests need when it is
# missing -- Debian's cp2k, openmpi-bin, slurm-wlm, munge, libopenblas0-pthread; the package with its test extras in
# the repo's virtual environment .venv (the quick start's; created when missing, since Debian's
# system Python refuses pip installs, PEP 668) -- then runs the whole suite with that
# environment's Python. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v cp2k.psmp >/dev/null || need+=(cp2k)
command -v mpirun >/dev/null || need+=(openmpi-bin)
command -v slurmctld >/dev/null || need+=(slurm-wlm)
command -v munged >/dev/null || need+=(munge)
# Debian's cp2k links the reference (netlib) BLAS/LAPACK unless an optimised one is installed;
# OpenBLAS makes xTB several times faster (bench/RESULTS.md)
[ -e /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3 ] || need+=(libopenblas0-pthread)
# Slurm's PMIx plugin dlopens libpmix.so (dev symlink) to start OpenMPI ranks under srun
ls /usr/lib/*/libpmix.so >/dev/null 2>&1 || need+=(libpmix-dev)
# Debian's python3 makes virtual environments only with python3-venv (it ships ensurepip)
[ -x .venv/bin/python ] || python3 -c 'import ensurepip' 2>/dev/null || need+=(python3-venv)
how="as root"
[ "$(id -u)" -eq 0 ] || how="through sudo (it may ask for your password)"
if [ ${#need[@]} -gt 0 ]; then
    echo "tests/run.sh: will install Debian packages ${how}: ${need[*]}"
fi
echo "tests/run.sh: will install qdphonon with its test extras into .venv (pip; created when missing), then run pytest"
if [ ${#need[@]} -gt 0 ]; then
    echo "tests/run.sh: installing Debian packages: ${need[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q -e ".[test]"
# the tests start `snakemake`, `qdphonon` and the rules' `python` by name: the venv's
export PATH="$PWD/.venv/bin:$PATH"

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
exec .venv/bin/python -m pytest -ra --durations=25 "$@"
