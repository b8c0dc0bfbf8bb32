"""The diffusers adapter: schedulers, the guidance hook, modular guiders and attention hooks over :mod:`inertia.core`.

Every use of a diffusers private name is in :mod:`inertia.adapters.diffusers.private_api`.
"""
