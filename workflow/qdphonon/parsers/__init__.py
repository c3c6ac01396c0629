"""Pure parsers of CP2K MD output: ``xyz`` (trajectories), ``energies`` (``.ener``), ``molog`` (MO
blocks), ``main_output`` (force evaluations, SCF verdicts, OT band edges), ``band_edges`` (steps
aligned across segments), ``run_dir`` (one directory, ours or any), ``writers`` (tables).
"""
