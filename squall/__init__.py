"""Squall: Jepsen-style fault injection, in Python, for any system behind the System seam.

``from squall.run import Test, run`` is the Python entry point: build a
``Test`` (a system, a workload, faults, limits) and ``run`` it for a verdict.
Importing the package costs nothing (the store's own node processes do,
through ``squall.systems.aurora.store``).
"""
