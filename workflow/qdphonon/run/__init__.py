"""A CP2K run directory, owned here: its names (``files``: ``RunFiles``, segments, records,
relaxation), its layout and discovery (``layout``: ``segments.json``, ``SegmentEnd``,
``discover``), the lock (``lock``), the records of the shared files (``records``), recovery after
a kill (``recovery``) and the run errors (``errors``). Engines write run directories and parsers
read them through this subpackage; it imports no engine.
"""
