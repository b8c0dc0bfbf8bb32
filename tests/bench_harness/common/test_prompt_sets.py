"""The decoding prompt set: size, uniqueness and the interleaving by domain."""

from __future__ import annotations

from benchmarks.common.prompt_sets import load_prompts


def test_prompt_set() -> None:
    prompts = load_prompts()
    texts = [p["prompt"] for p in prompts]
    assert len(prompts) >= 100 and len(set(texts)) == len(texts)
    assert len(prompts) % 8 == 0  # whole batches of 8: every quality batch is a batch-8 speed measurement
    domains = [p["domain"] for p in prompts]
    assert {d: domains.count(d) for d in set(domains)} == {
        "news": 21,
        "encyclopedia": 21,
        "story": 21,
        "dialogue": 21,
        "how-to": 20,
    }
    assert domains[:5] == ["news", "encyclopedia", "story", "dialogue", "how-to"]  # interleaved by domain
    assert len(set(domains[:20])) == 5  # the 20 speed prompts cover every domain
