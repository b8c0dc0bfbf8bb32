"""Benchmarks for the inertia samplers (run as ``python -m benchmarks.<name>``)."""
