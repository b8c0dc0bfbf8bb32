"""Momentum decoding (Lan et al. 2022): repetition levels, resistance and selection scores."""
