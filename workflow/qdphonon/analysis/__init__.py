"""From band-edge and velocity trajectories to the physics of the emission linewidth.

``inputs`` reads and validates tables; ``spectrum`` the Huang-Rhys spectrum, lambda and Gamma;
``uncertainty`` replica and block error bars; ``spectral_interval`` one trajectory's interval;
``temperature`` the temperature that normalises lambda; ``edges`` lines cut by region edges;
``vdos`` the phonon density of states; ``system`` one system end to end; ``summary`` the campaign table.
"""
