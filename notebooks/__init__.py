"""Jupyter notebooks, the way PYNQ users work: `pynq get-notebooks spikeloop` copies this folder.

Each notebook runs unchanged on a PYNQ board or, without one, on the simulated board.
"""
