"""qdphonon: from AIMD of perovskite quantum dots to the physics of their emission linewidth.

One module a stage: ``structures`` (QD models), ``cp2k_input`` (CP2K inputs),
``engines`` (real CP2K and the synthetic mock), ``parsers`` (CP2K output),
``analysis`` (Huang-Rhys spectra, reorganisation energy, linewidth, VDOS),
``plots`` (figures) and ``cli`` (the ``qdphonon`` command). ``config`` and
``units`` are light helpers safe to import when the Snakefile is parsed.
"""

__version__ = "0.1.0"
