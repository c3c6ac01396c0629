"""Engines that fill an AIMD run directory: ``cp2k`` (real CP2K, segment by segment), ``relax``
(geometry optimisation), ``process`` (starting and stopping CP2K), ``allocation`` (the time CP2K may run), and the
synthetic mock: ``mock_model`` (its physics), ``mock_writers`` (CP2K's file
formats), ``mock`` (the run).
"""
