"""The transformers adapter: logits processor, ``custom_generate`` callables and the attention interface."""
