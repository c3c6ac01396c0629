"""CP2K inputs: ``inputs`` builds them as dicts (levels xtb and pbe), ``xmlspec`` renders and validates
them against the installed CP2K's ``--xml`` definition, ``readback`` reads an input back
(:class:`MDInput`), ``continuation`` derives continuation inputs (``EXT_RESTART``, WALLTIME).
"""
