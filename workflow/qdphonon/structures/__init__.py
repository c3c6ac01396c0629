"""Charge-neutral CsPbBr3 and CsPbBr3/CsMBr3 core/shell cuboid QD models: ``model`` (the records),
``lattice`` (sites and layers), ``neutrality`` (Coulomb-optimal Cs removal), ``build``, ``io``
(extended XYZ and the JSON sidecar).
"""
