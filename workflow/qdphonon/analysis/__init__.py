"""From band-edge and velocity trajectories to the physics of the emission linewidth.

``inputs`` reads and validates tables; ``spectrum`` the Huang-Rhys spectrum, lambda and Gamma;
``uncertainty`` replica and block error bars; ``vdos`` the phonon density of states; ``system``
one system end to end; ``summary`` the campaign table.
"""
