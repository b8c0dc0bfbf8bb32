"""Offline data sets: the digits images (scikit-learn's 8x8 digits, upscaled) and the text corpora."""
