"""Old import path of :mod:`inertia.adapters.diffusers.scheduling_momentum_dpmsolver`, the diffusers scheduler (saved pipelines record this path in model_index.json).

The module at this path *is* that module (`sys.modules` alias), so every name, class and patch target is shared.
"""

from inertia._lazy import alias_module

alias_module(__name__, "inertia.adapters.diffusers.scheduling_momentum_dpmsolver")
