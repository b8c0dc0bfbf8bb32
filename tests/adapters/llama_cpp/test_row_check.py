"""The check of llama-cpp-python's 1-D calling convention shared by both llama.cpp processors."""

from __future__ import annotations

import numpy as np
import pytest

from inertia.adapters.llama_cpp.row_check import check_one_row


def test_two_dimensional_arrays_are_named() -> None:
    check_one_row("P", np.zeros(3, dtype=np.intc), np.zeros(5, dtype=np.single))
    with pytest.raises(ValueError, match=r"P expects input_ids \[T\] and scores \[V\].*\(1, 3\) and \(5,\)"):
        check_one_row("P", np.zeros((1, 3)), np.zeros(5))
