"""Plain-loop references for the decoder tests: the authors' momentum decoding and a no-cache contrastive search.

The momentum-decoding reference restates the authors' algorithm (``gmftbyGMFTBY/MomentumDecoding``,
``models/utlis_ngram.py``: ``find_max_repetition_length`` and ``ResistanceDecodingNGram``) with the same data
structures: a dict graph of token -> positions, the set of every window ending at each occurrence of the candidate,
one candidate at a time, batch size 1, Python lists. Nothing here is vectorised on purpose.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def build_graph(tokens: Sequence[int]) -> dict[int, dict]:
    """Token -> {"indexes": positions, "next_neighbors": successors}, as the authors build it from the prompt."""
    graph: dict[int, dict] = {}
    for i, node in enumerate(tokens):
        graph.setdefault(node, {"next_neighbors": set(), "indexes": []})["indexes"].append(i)
        if i > 0:
            graph[tokens[i - 1]]["next_neighbors"].add(node)
    return graph


def reference_level(tokens: Sequence[int], candidate: int, max_length: int = 5) -> int:
    """The authors' ``find_max_repetition_length`` on the history ``tokens``."""
    tokens = list(tokens)
    graph = build_graph(tokens)
    if candidate not in graph:
        return 0
    index_path: dict[int, set] = {i: set() for i in range(1, max_length + 1)}
    for index in graph[candidate]["indexes"]:
        idx = index
        while idx >= 0:
            item = tuple(tokens[idx : index + 1])
            idx -= 1
            if len(item) <= max_length:
                index_path[len(item)].add(item)
            else:
                break
    level = 1
    for i in range(max_length, 1, -1):
        query = (*tokens[-i + 1 :], candidate)
        if query in index_path[i]:
            level = i
            break
    return level


def reference_resistance(table: Sequence[float], level: int) -> float:
    """The authors' dict lookup: a level missing from the table costs +inf."""
    return float(table[level]) if level < len(table) else math.inf


def reference_choice(
    tokens: Sequence[int],
    logits: torch.Tensor,
    alpha: float,
    top_k: int,
    table: Sequence[float],
    max_length: int | None = None,
) -> tuple[int, list[int], list[float]]:
    """One step of ``ResistanceDecodingNGram`` for one sequence: (chosen id, top-k ids, their scores s)."""
    max_length = len(table) - 1 if max_length is None else max_length
    logits = logits.float().reshape(-1)
    probs = torch.softmax(logits, dim=-1)
    top_ids = torch.topk(logits, k=top_k).indices.tolist()
    scores = []
    for candidate in top_ids:
        level = reference_level(tokens, candidate, max_length)
        scores.append(float(probs[candidate]) - alpha * reference_resistance(table, level))
    best = max(range(len(scores)), key=lambda i: scores[i])  # first maximum, in top-k order
    return top_ids[best], top_ids, scores


@torch.no_grad()
def reference_momentum_generate(
    model, prompt: Sequence[int], max_new_tokens: int, alpha: float, top_k: int, table: Sequence[float]
) -> list[int]:
    """The authors' decoding loop for one prompt, re-running the whole sequence every step (no cache)."""
    tokens = list(prompt)
    for _ in range(max_new_tokens):
        logits = model(torch.tensor([tokens])).logits[0, -1]
        chosen, _, _ = reference_choice(tokens, logits, alpha, top_k, table)
        tokens.append(chosen)
    return tokens


@torch.no_grad()
def reference_contrastive_generate(
    model, prompt: Sequence[int], max_new_tokens: int, alpha: float, k: int
) -> list[int]:
    """Su et al.'s contrastive search for one prompt, recomputing every hidden state from scratch (no cache)."""
    tokens = list(prompt)
    for _ in range(max_new_tokens):
        out = model(torch.tensor([tokens]), output_hidden_states=True)
        context = out.hidden_states[-1][0]  # [T, D]
        probs = torch.softmax(out.logits[0, -1].float(), dim=-1)
        top_probs, top_ids = probs.topk(k)
        best, best_score = None, -math.inf
        for p, candidate in zip(top_probs.tolist(), top_ids.tolist()):
            hidden = model(torch.tensor([[*tokens, candidate]]), output_hidden_states=True).hidden_states[-1][0, -1]
            penalty = max(float(torch.cosine_similarity(hidden, h, dim=0)) for h in context)
            score = (1 - alpha) * p - alpha * penalty
            if score > best_score:
                best, best_score = candidate, score
        tokens.append(best)
    return tokens
