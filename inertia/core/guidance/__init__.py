"""Guidance math: CFG, APG (Sadat et al. 2025) and HiGS, with their configs and per-generation state."""
