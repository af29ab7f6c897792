"""Simulation: random bundles and cocotb testbenches that check the RTL against sw.golden."""
