"""Old import path of :mod:`inertia.adapters.transformers.attention_interface`, momentum attention for language models (the docs of 0.1 import it from here).

The module at this path *is* that module (`sys.modules` alias), so every name, class and patch target is shared.
"""

from inertia._lazy import alias_module

alias_module(__name__, "inertia.adapters.transformers.attention_interface")
