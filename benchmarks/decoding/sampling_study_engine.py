"""The sampling study's generator: llama.cpp (llama-cpp-python's low-level API) on the embedded SmolLM2 GGUF, with a
sampler chain per prompt built from a :class:`~benchmarks.decoding.sampling_study_grid.Row`.

Each step reads the last position's logits from llama.cpp's buffer, lets our Python processors (the momentum penalty,
momentum decoding, no-repeat-n-gram) rewrite them in place, bans end-of-text (every continuation is exactly the asked
length, as in the transformers benchmarks), and samples with llama.cpp's own chain: penalties, DRY, top-k, top-p,
min-p, temperature and ``dist``. The prompt's tokens are accepted into the chain before the first step, as
``llama-cli`` does, so DRY and the penalties see the prompt.
"""

from __future__ import annotations

import ctypes
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from benchmarks.decoding.sampling_study_grid import DRY_BREAKERS, SAMPLING, Row

__all__ = ["LlamaStudyEngine", "LlamaTokenizerView"]

PENALTY_LAST_N = 64
"""llama.cpp's default window for the repetition, presence and frequency penalties (``--repeat-last-n``)."""


class LlamaTokenizerView:
    """The two calls of a transformers tokenizer that :func:`benchmarks.decoding.human_reference.lee_items` makes,
    answered by llama.cpp's tokenizer of the same GGUF (no special tokens, no BOS: as SmolLM2's tokenizer)."""

    def __init__(self, llm: Any) -> None:
        self.llm = llm

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self.encode(text)}

    def encode(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)) if text else []

    def decode(self, ids: Sequence[int]) -> str:
        return self.llm.detokenize(list(ids)).decode("utf-8", errors="replace")


class LlamaStudyEngine:
    """Generates exactly ``max_new_tokens`` tokens per prompt for one row and seed.

    Args:
        model_path: the GGUF file.
        threads: llama.cpp threads.
        n_ctx: the context size (prompt plus the longest continuation).
    """

    def __init__(self, model_path: str, threads: int = 1, n_ctx: int = 1024) -> None:
        import llama_cpp

        self.lib = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=model_path, n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads, verbose=False
        )
        self.vocab = llama_cpp.llama_model_get_vocab(self.llm._model.model)
        self.n_vocab = self.llm.n_vocab()
        self.eos = self.llm.token_eos()
        self.tokenizer = LlamaTokenizerView(self.llm)

    def _chain(self, row: Row, seed: int) -> Any:
        lib = self.lib
        chain = lib.llama_sampler_chain_init(lib.llama_sampler_chain_default_params())

        def add(sampler: Any) -> None:
            lib.llama_sampler_chain_add(chain, sampler)

        if row.penalties is not None:
            repeat, frequency, presence = row.penalties
            add(lib.llama_sampler_init_penalties(self.n_vocab, PENALTY_LAST_N, repeat, frequency, presence))
        if row.dry is not None:
            multiplier, base, allowed = row.dry
            breakers = (ctypes.c_char_p * len(DRY_BREAKERS))(*(b.encode() for b in DRY_BREAKERS))
            # the whole context: this binding has no n_ctx_train argument, so a window of -1 would switch DRY off
            window = self.llm.n_ctx()
            add(lib.llama_sampler_init_dry(self.vocab, multiplier, base, allowed, window, breakers, len(DRY_BREAKERS)))
        if row.greedy:
            add(lib.llama_sampler_init_greedy())
        else:
            add(lib.llama_sampler_init_top_k(int(SAMPLING["top_k"])))
            add(lib.llama_sampler_init_top_p(SAMPLING["top_p"], 1))
            add(lib.llama_sampler_init_min_p(SAMPLING["min_p"], 1))
            add(lib.llama_sampler_init_temp(SAMPLING["temperature"]))
            add(lib.llama_sampler_init_dist(seed))
        return chain

    def _processors(self, row: Row, prompt: list[int]) -> list[Any]:
        """Callables ``f(history: list[int], logits: torch.Tensor [V]) -> None`` rewriting the logits in place."""
        procs: list[Any] = []
        if row.momentum_penalty is not None:
            from inertia.core.decoding.momentum_penalty import momentum_penalty_table
            from inertia.core.decoding.penalty_index import MomentumPenaltyRow

            state = MomentumPenaltyRow(momentum_penalty_table(row.momentum_penalty))
            state.extend(prompt)

            def penalty(history: list[int], logits: torch.Tensor) -> None:
                state.extend(history[state.length :])  # the tokens generated since the last step
                state.apply(logits.clone(), out=logits)  # eq. (4): z − α·R(l(v))

            procs.append(penalty)
        if row.momentum_decoding is not None:
            from inertia.core.decoding.momentum import DEFAULT_RESISTANCE, momentum_scores, penalty_table

            alpha, top_k = row.momentum_decoding
            table = penalty_table(alpha, DEFAULT_RESISTANCE)

            def momentum(history: list[int], logits: torch.Tensor) -> None:
                ids = torch.tensor([history], dtype=torch.long)
                logits.copy_(momentum_scores(ids, logits.unsqueeze(0), table, top_k)[0])

            procs.append(momentum)
        if row.no_repeat_ngram:
            from transformers import NoRepeatNGramLogitsProcessor

            rule = NoRepeatNGramLogitsProcessor(row.no_repeat_ngram)

            def no_repeat(history: list[int], logits: torch.Tensor) -> None:
                ids = torch.tensor([history], dtype=torch.long)
                logits.copy_(rule(ids, logits.unsqueeze(0))[0])

            procs.append(no_repeat)
        return procs

    def generate(self, prompt: str, row: Row, seed: int, max_new_tokens: int) -> dict[str, Any]:
        """``{"text", "tokens", "seconds"}`` of one continuation of exactly ``max_new_tokens`` tokens."""
        lib, llm = self.lib, self.llm
        prompt_ids = self.tokenizer.encode(prompt)
        llm.reset()  # eval() drops the cache from position n_tokens = 0 on
        chain = self._chain(row, seed)
        try:
            for token in prompt_ids:
                lib.llama_sampler_accept(chain, token)
            procs = self._processors(row, prompt_ids)
            history = list(prompt_ids)
            start = time.perf_counter()
            llm.eval(prompt_ids)
            generated: list[int] = []
            for _ in range(max_new_tokens):
                pointer = lib.llama_get_logits_ith(llm._ctx.ctx, -1)
                logits = torch.from_numpy(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)))  # llama.cpp's buffer
                logits[self.eos] = -math.inf
                for proc in procs:
                    proc(history, logits)
                token = int(lib.llama_sampler_sample(chain, llm._ctx.ctx, -1))  # also accepts it into the chain
                generated.append(token)
                history.append(token)
                llm.eval([token])
            seconds = time.perf_counter() - start
        finally:
            lib.llama_sampler_free(chain)
        return {"text": self.tokenizer.decode(generated), "tokens": generated, "seconds": seconds}
