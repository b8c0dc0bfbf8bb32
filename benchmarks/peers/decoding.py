"""Anti-repetition peers of momentum decoding: DRY ("Don't Repeat Yourself") as a transformers logits processor.

DRY is the sequence penalty of text-generation-webui (p-e-w, pull request #5677), also shipped by llama.cpp,
koboldcpp, exllamav2/v3 and vLLM. Written here from its public description, vectorised over the batch. For a context
``x_1 .. x_T`` (the last ``range_limit`` tokens, or all of them) and every earlier position ``i < T`` whose token
``x_i`` equals the last token ``x_T``:

    (1)  L(i) = the largest L such that x_{i-k} = x_{T-k} for k = 0 .. L-1, the context tokens x_{T-k} are no
         sequence breakers, and i - L + 1 >= 1 (the match may overlap the suffix itself); L is capped at
         ``max_match_length`` (50, text-generation-webui's cap against exponent overflow);
    (2)  the token that followed the earlier occurrence, v = x_{i+1}, would extend the repeat to L + 1 tokens; it is
         penalised unless it is a breaker, with the longest such match over all occurrences:
         L*(v) = max_{i : x_{i+1} = v} L(i);
    (3)  logit(v) <- logit(v) - multiplier * base^(L*(v) - allowed_length)   if L*(v) >= allowed_length.

So with the defaults users run (multiplier 0.8, base 1.75, allowed length 2), a token that would make a repeated
3-token sequence loses 0.8 logits, one that would make a repeated 4-token sequence 1.4, and the penalty grows
exponentially with the length of the repeat. A last token that is a breaker switches DRY off for that step. Sequence
breakers resolve, as in llama.cpp, to every vocabulary token whose text contains a breaker string (the defaults are
newline, ``:``, ``"`` and ``*``); llama.cpp's multi-token restart sequences are not implemented.

The matrix formulation: with ``K = max_match_length``, ``A[i, k] = x_{i-k}`` (the context read backwards from each
earlier position) is compared with ``S[k] = x_{T-k}`` (read backwards from the end); ``L(i)`` is the number of
leading matches along ``k`` (a cumulative product). That costs ``O(B · T · K)`` per step, with no host
synchronisation.

Example:
    >>> import torch
    >>> dry = DRYLogitsProcessor(multiplier=1.0, base=2.0, allowed_length=2)
    >>> a, b, c, y = 0, 1, 2, 3
    >>> context = torch.tensor([[a, b, c, c, b, c, y, a, b, c]])   # ends in "a b c", which occurred before
    >>> dry(context, torch.zeros(1, 4)).tolist()   # c would repeat "a b c c" (L = 3), y "b c y" (L = 2)
    [[0.0, 0.0, -2.0, -1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

__all__ = [
    "DEFAULT_SEQUENCE_BREAKERS",
    "DRYLogitsProcessor",
    "dry_match_lengths",
    "dry_penalties",
    "sequence_breaker_ids",
]

DEFAULT_SEQUENCE_BREAKERS: tuple[str, ...] = ("\n", ":", '"', "*")
"""text-generation-webui's and llama.cpp's default sequence breakers."""

MAX_MATCH_LENGTH_LIMIT = 1024
"""Largest ``max_match_length`` accepted (the per-step cost grows linearly with it)."""


def sequence_breaker_ids(tokenizer: Any, breakers: Iterable[str] = DEFAULT_SEQUENCE_BREAKERS) -> list[int]:
    """The ids of every token whose decoded text contains one of the breaker strings (llama.cpp's rule).

    Args:
        tokenizer: anything with ``batch_decode(list[list[int]]) -> list[str]`` and ``len(tokenizer)`` (or
            ``vocab_size``): a transformers tokenizer.
        breakers: the breaker strings; empty strings are ignored.

    Returns:
        The sorted token ids.
    """
    wanted = [s for s in breakers if isinstance(s, str) and s]
    if not wanted:
        return []
    size = len(tokenizer) if hasattr(tokenizer, "__len__") else int(tokenizer.vocab_size)
    texts = tokenizer.batch_decode([[i] for i in range(size)])
    return [i for i, text in enumerate(texts) if any(s in text for s in wanted)]


def dry_match_lengths(
    input_ids: torch.Tensor,
    breaker_ids: torch.Tensor | None = None,
    max_match_length: int = 50,
    ignore: torch.Tensor | None = None,
) -> torch.Tensor:
    """``L(i)`` of eq. (1) for every earlier position, with the breaker rule of eq. (2) applied.

    Args:
        input_ids: ``[B, T]`` context (already cut to the range limit).
        breaker_ids: 1-D tensor of sequence-breaker token ids (``None``: no breakers).
        max_match_length: ``K``, the cap on ``L``.
        ignore: optional ``[B, T]`` bool mask of positions that are not text (left padding).

    Returns:
        ``[B, T - 1]`` long tensor: for position ``i`` (0-based, ``i < T - 1``) the length of the longest suffix
        of the context that also ends at ``i``, or 0 where the token after ``i`` is a breaker (it is never
        penalised) or the last token is one.
    """
    batch, length = input_ids.shape
    if length < 2:
        return input_ids.new_zeros(batch, 0)
    k = max_match_length
    if breaker_ids is None or breaker_ids.numel() == 0:
        breaker = torch.zeros_like(input_ids, dtype=torch.bool)
    else:
        breaker = torch.isin(input_ids, breaker_ids.to(input_ids.device))
    if ignore is None:
        ignore = torch.zeros_like(breaker)
    earlier = input_ids.masked_fill(ignore, -1)  # padding (-1) never equals a token
    # A[b, i, k] = x[b, i - k]: each earlier position read backwards; before the start there is only -1.
    padded = torch.cat([earlier.new_full((batch, k), -1), earlier], dim=1)  # [B, K + T]
    backwards = padded.unfold(1, k, 1)[:, 1:length, :].flip(-1)  # [B, T - 1, K]
    # S[b, k] = x[b, T - 1 - k]: the context read backwards from its last token; -2 past its start (no match).
    suffix = input_ids.flip(1)[:, :k]
    usable = ~(breaker | ignore).flip(1)[:, :k]  # a breaker (or padding) in the suffix ends every match (eq. (1))
    if suffix.shape[1] < k:
        missing = k - suffix.shape[1]
        suffix = torch.cat([suffix, suffix.new_full((batch, missing), -2)], dim=1)
        usable = torch.cat([usable, usable.new_zeros(batch, missing)], dim=1)
    matches = (backwards == suffix.unsqueeze(1)) & usable.unsqueeze(1)  # [B, T - 1, K]
    lengths = matches.long().cumprod(dim=-1).sum(dim=-1)  # leading run of matches = L(i)  (eq. (1))
    following_is_breaker = breaker[:, 1:]  # the token that would be penalised, x_{i+1} (eq. (2))
    return lengths.masked_fill(following_is_breaker, 0)


def dry_penalties(
    input_ids: torch.Tensor,
    vocab_size: int,
    multiplier: float,
    base: float,
    allowed_length: int,
    breaker_ids: torch.Tensor | None = None,
    max_match_length: int = 50,
    ignore: torch.Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``[B, V]`` penalties of eq. (3) (0 for tokens that extend no repeat of ``allowed_length`` or more)."""
    batch = input_ids.shape[0]
    lengths = dry_match_lengths(input_ids, breaker_ids, max_match_length, ignore)
    following = input_ids[:, 1:].clamp(min=0)  # v = x_{i+1}; where it is padding L(i) is 0 anyway
    longest = torch.zeros(batch, vocab_size, dtype=dtype, device=input_ids.device)
    longest = longest.scatter_reduce(1, following, lengths.to(dtype), reduce="amax")  # L*(v)  (eq. (2))
    exponent = (longest - allowed_length).clamp(min=0)
    penalty = multiplier * torch.pow(torch.tensor(base, dtype=dtype, device=input_ids.device), exponent)  # eq. (3)
    return torch.where(longest >= allowed_length, penalty, 0.0)


def _number(name: str, value: Any, low: float, description: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < low:
        raise ValueError(f"`{name}` must be a finite number {description}, got {value!r}.")
    return float(value)


def _integer(name: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be an integer {bound}, got {value!r}.")
    return value


class DRYLogitsProcessor(LogitsProcessor):
    r"""DRY ("Don't Repeat Yourself", p-e-w): subtracts ``multiplier · base^(L − allowed_length)`` from the logit of
    every token that would extend a repeat of ``L ≥ allowed_length`` tokens (see the module docstring).

    Use it with greedy search (DRY over greedy, as in our benchmark) or before sampling warpers; like transformers'
    own processors it is stateless, vectorised over the batch and returns a new tensor.

    Args:
        multiplier: penalty scale ≥ 0 (users' default 0.8; 0 switches DRY off and returns the scores unchanged).
        base: growth of the penalty with the repeat length, ≥ 1 (default 1.75).
        allowed_length: the longest repeat that is not penalised, ≥ 1 (default 2: a token that would repeat a
            3-token sequence is penalised).
        sequence_breakers: token ids that no match may cross; a breaker is never penalised, and a context that ends
            in one is not penalised at all. :meth:`from_tokenizer` resolves breaker strings to ids.
        range_limit: look only at the last ``range_limit`` tokens; 0 (default) looks at the whole context.
        max_match_length: cap on the measured repeat length (50, as text-generation-webui; the penalty at 50 is
            already ~10^11 at the default base).
        pad_token_id: the left-padding id: leading runs of it are not text (left-padded batches then give what each
            row gives alone). ``None``: every position is text.

    Raises:
        ValueError: at construction for any invalid parameter (named, with its value and the valid range); at call
            time for scores that are not ``[B, V]`` with the rows of ``input_ids``.

    Example:
        >>> import torch
        >>> dry = DRYLogitsProcessor()                  # multiplier 0.8, base 1.75, allowed length 2
        >>> ids = torch.tensor([[5, 6, 7, 8, 5, 6, 7]])   # "5 6 7" occurred before, followed by 8
        >>> out = dry(ids, torch.zeros(1, 10))
        >>> round(float(out[0, 8]), 4)                 # L = 3: 0.8 · 1.75^(3 − 2)
        -1.4
    """

    supports_continuous_batching = False

    def __init__(
        self,
        multiplier: float = 0.8,
        base: float = 1.75,
        allowed_length: int = 2,
        sequence_breakers: Iterable[int] = (),
        range_limit: int = 0,
        max_match_length: int = 50,
        pad_token_id: int | None = None,
    ) -> None:
        self.multiplier = _number("multiplier", multiplier, 0.0, ">= 0")
        self.base = _number("base", base, 1.0, ">= 1")
        self.allowed_length = _integer("allowed_length", allowed_length, 1)
        self.range_limit = _integer("range_limit", range_limit, 0)
        self.max_match_length = _integer("max_match_length", max_match_length, 1, MAX_MATCH_LENGTH_LIMIT)
        if pad_token_id is not None:
            _integer("pad_token_id", pad_token_id, 0)
        self.pad_token_id = pad_token_id
        try:
            breakers = sorted(set(sequence_breakers))
        except TypeError as err:
            raise ValueError(
                f"`sequence_breakers` must be an iterable of token ids, got {sequence_breakers!r}."
            ) from err
        for token in breakers:
            if isinstance(token, bool) or not isinstance(token, int) or token < 0:
                raise ValueError(f"`sequence_breakers` must hold token ids >= 0, got {token!r} in {breakers!r}.")
        self.sequence_breakers = tuple(breakers)
        self._breakers = torch.tensor(self.sequence_breakers, dtype=torch.long)
        self._by_device: dict[torch.device, torch.Tensor] = {}

    @classmethod
    def from_tokenizer(
        cls, tokenizer: Any, breakers: Sequence[str] = DEFAULT_SEQUENCE_BREAKERS, **kwargs: Any
    ) -> DRYLogitsProcessor:
        """A processor whose sequence breakers are the tokens containing ``breakers`` (see
        :func:`sequence_breaker_ids`); ``pad_token_id`` defaults to the tokenizer's."""
        kwargs.setdefault("pad_token_id", getattr(tokenizer, "pad_token_id", None))
        return cls(sequence_breakers=sequence_breaker_ids(tokenizer, breakers), **kwargs)

    def _breaker_ids(self, device: torch.device) -> torch.Tensor:
        if device not in self._by_device:
            self._by_device[device] = self._breakers.to(device)
        return self._by_device[device]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.Tensor) -> torch.Tensor:
        """Returns ``scores`` minus the DRY penalties (eq. (3)), in ``scores.dtype``; ``-inf`` scores stay ``-inf``.

        Args:
            input_ids: ``[B, T]`` prompt plus the tokens generated so far.
            scores: ``[B, V]`` next-token logits.
        """
        if scores.dim() != 2 or input_ids.dim() != 2 or scores.shape[0] != input_ids.shape[0]:
            raise ValueError(
                "DRYLogitsProcessor expects input_ids [B, T] and scores [B, V] with the same B, got "
                f"{tuple(input_ids.shape)} and {tuple(scores.shape)}."
            )
        if self.multiplier == 0.0:
            return scores.clone()
        ignore = None
        if self.pad_token_id is not None:
            ignore = (input_ids == self.pad_token_id).long().cummin(dim=1).values.bool()  # the leading run only
        if self.range_limit > 0:
            input_ids = input_ids[:, -self.range_limit :]
            ignore = None if ignore is None else ignore[:, -self.range_limit :]
        work = torch.promote_types(scores.dtype, torch.float32)  # float32, or float64 kept
        penalty = dry_penalties(
            input_ids,
            scores.shape[-1],
            self.multiplier,
            self.base,
            self.allowed_length,
            self._breaker_ids(input_ids.device),
            self.max_match_length,
            ignore,
            work,
        )
        out = scores.to(work) - penalty
        # A penalised finite logit stays finite in the caller's dtype (float16 would overflow to -inf); a logit an
        # earlier processor banned (-inf) stays banned.
        low = torch.finfo(scores.dtype).min
        out = torch.where(torch.isfinite(scores), out.clamp(min=low), scores.to(work))
        return out.to(scores.dtype)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(multiplier={self.multiplier}, base={self.base}, "
            f"allowed_length={self.allowed_length}, breakers={len(self.sequence_breakers)}, "
            f"range_limit={self.range_limit}, pad_token_id={self.pad_token_id})"
        )
