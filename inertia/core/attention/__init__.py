"""Momentum attention across denoising steps: the rules and the per-call trajectory state."""
