"""Which temperature normalises the spectrum: the temperature of the internal motion the run had.

``lambda = Var(dE) / (2 k_B T)`` (docs/physics.md §1.3) holds for the temperature of the motion
that modulates the gap: the vibrations. An isolated dot also translates and rotates as a rigid
body; that motion does not move the gap, but a global thermostat heats it, so the vibrations can
run colder than ``T_md`` (a Cs4PbBr6 PBE run: 7.3 K at T_md = 10 K, 32.5 % of the kinetic energy
in rigid rotation). With velocities *and* positions the internal kinetic temperature
(rigid translation and rotation removed, ``3N - 6`` degrees of freedom, docs/physics.md §4.6)
normalises each replica; otherwise ``T_md`` does, with a warning. Temperatures in K.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Sequence


class TemperatureSource(str, Enum):
    """Where the normalising temperature comes from (``temperature_source`` in linewidth.json)."""

    VELOCITIES = "velocities"
    MD_TEMPERATURE = "md_temperature"


@dataclass(frozen=True)
class NormalisingTemperature:
    """The temperature each replica's spectrum is divided by, K, and where it comes from."""

    per_replica_K: tuple[float, ...]
    source: TemperatureSource
    md_temperature_K: float

    @property
    def value_K(self) -> float:
        """Mean over replicas, K (``normalisation_temperature_K`` in linewidth.json)."""
        return float(sum(self.per_replica_K) / len(self.per_replica_K))

    def record(self) -> dict:
        """The JSON fields: ``temperature_source``, ``normalisation_temperature_K`` (and per replica)."""
        return {"temperature_source": self.source.value, "normalisation_temperature_K": self.value_K,
                "normalisation_temperature_K_per_replica": list(self.per_replica_K)}  # fmt: skip


def normalising_temperature(n_replicas: int, md_temperature_K: float,
                            internal_K_per_file: Sequence[float] | None = None,
                            rigid_motion_removed: bool = False, system: str = "system") -> NormalisingTemperature:
    """Per-replica normalising temperature (K) of ``n_replicas`` gap trajectories.

    ``internal_K_per_file``: mean kinetic temperature of each velocity file's production window,
    measured with rigid motion removed (``rigid_motion_removed``). One file per replica: each
    replica gets its own; another count: every replica gets their mean (warned). Without
    velocities, without positions (rigid motion still in), or with a non-positive temperature:
    ``md_temperature_K`` for all, with a warning saying the bias it may carry.
    """
    T_md = float(md_temperature_K)
    temps = [float(x) for x in internal_K_per_file or []]
    usable = bool(temps) and rigid_motion_removed and all(math.isfinite(x) and x > 0 for x in temps)
    if not usable:
        why = ("no velocities" if not temps else
               "the velocity files have no positions, so rigid translation and rotation could not be removed"
               if not rigid_motion_removed else "a measured internal temperature is not positive")  # fmt: skip
        warnings.warn(f"{system}: lambda is normalised by md_temperature_K = {T_md:g} K, not by the measured temperature "
                      f"of the internal motion ({why}); if the dot rotated, its vibrations ran colder and lambda is "
                      "biased low by the same factor", stacklevel=2)  # fmt: skip
        return NormalisingTemperature((T_md,) * n_replicas, TemperatureSource.MD_TEMPERATURE, T_md)
    if len(temps) != n_replicas:
        mean = sum(temps) / len(temps)
        warnings.warn(f"{system}: {len(temps)} velocity file(s) for {n_replicas} band-edge file(s); every replica is "
                      f"normalised by their mean internal temperature {mean:.3g} K", stacklevel=2)  # fmt: skip
        temps = [mean] * n_replicas
    return NormalisingTemperature(tuple(temps), TemperatureSource.VELOCITIES, T_md)
