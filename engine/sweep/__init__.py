"""Sweeps: many searches over seeds, variants and settings, and what they found together.

spec.py expands a preset, fixed overrides, a grid and seeds into members (validated before anything starts) and
writes sweep.json; member.py runs one member in a process of its own; run.py schedules members on this machine
(a pool of processes) or as Ray tasks; report.py summarises members per group of seeds and compares groups.
"""
