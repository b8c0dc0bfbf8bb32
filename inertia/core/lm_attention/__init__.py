"""Momentum attention for language models (Dai et al. 2023): the config and the EMA of value vectors."""
