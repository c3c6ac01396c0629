"""Physical constants and unit conversions used across qdphonon (CODATA 2018)."""

BOLTZMANN_meV_per_K = 8.617333262e-2
"""k_B in meV/K."""

HBAR_meV_fs = 658.2119569
"""Reduced Planck constant in meV*fs (hbar*omega[meV] = HBAR_meV_fs * omega[rad/fs])."""

HARTREE_eV = 27.211386245988
"""One Hartree in eV."""

BOHR_A = 0.529177210903
"""One Bohr radius in Angstrom."""

AU_TIME_fs = 2.4188843265857e-2
"""Atomic unit of time in fs."""

AU_VELOCITY_A_per_fs = BOHR_A / AU_TIME_fs
"""Atomic unit of velocity (bohr per a.u. time) in Angstrom/fs."""

FWHM_PER_SIGMA = 2.3548200450309493
"""2*sqrt(2 ln 2): FWHM of a Gaussian in units of its standard deviation."""
