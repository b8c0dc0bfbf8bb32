"""The Text tab through gradio_client (streaming, highlighting, figures), and eight concurrent requests."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client.exceptions import AppError
from PIL import Image

from inertia.pipelines.text_generation import generate_text
from tests.adapters.transformers.smollm2 import shared_smollm2

pytestmark = pytest.mark.xdist_group("smollm2")  # one SmolLM2 load per worker, shared with tests/adapters/transformers

TOKENS = 10


def joined(highlighted: list[dict]) -> str:
    return "".join(item["token"] for item in highlighted)


def test_text_streams_both_methods_with_figures(client) -> None:
    prompt = "Repeat after me: red, blue, red, blue, red, blue,"
    job = client.submit(
        prompt=prompt,
        method_a="greedy",
        method_b="momentum",
        alpha=0.2,
        top_k=5,
        max_new_tokens=TOKENS,
        highlight_n=2,
        api_name="/generate_text",
    )
    updates = list(job)
    a, b, table, figures = job.result()
    assert len(updates) > 2  # token by token, not one final answer
    model, tokenizer = shared_smollm2()
    assert joined(a) == generate_text(model, tokenizer, prompt, method="greedy", max_new_tokens=TOKENS)
    assert joined(b) == generate_text(
        model, tokenizer, prompt, method="momentum", max_new_tokens=TOKENS, alpha=0.2, top_k=5
    )
    runs = figures["runs"]
    assert runs["A"]["method"] == "greedy" and runs["B"]["params"] == {"alpha": 0.2, "top_k": 5}
    for run in runs.values():
        assert 1 <= run["new_tokens"] <= TOKENS and run["tokens_per_second"] > 0
        assert {"rep-2", "rep-3", "rep-4", "diversity"} <= set(run)
    repeated = [item["token"] for item in a if item["class_or_confidence"] == "repeat"]
    assert bool(repeated) == (runs["A"]["rep-2"] > 0)  # highlighted exactly when rep-2 says there are repeats
    assert "| A | `greedy` |" in table and "| B | `momentum` (alpha=0.2, top_k=5) |" in table


def test_momentum_attention_switch_applies_to_side_b_only(client) -> None:
    prompt = "The old lighthouse keeper climbed the stairs and"
    a, b, table, figures = client.predict(
        prompt=prompt,
        method_a="greedy",
        method_b="greedy",
        max_new_tokens=TOKENS,
        attention_b="momentum:0.3",
        api_name="/generate_text",
    )
    model, tokenizer = shared_smollm2()
    assert joined(a) == generate_text(model, tokenizer, prompt, method="greedy", max_new_tokens=TOKENS)
    assert joined(b) == generate_text(
        model, tokenizer, prompt, method="greedy", max_new_tokens=TOKENS, attention="momentum:0.3"
    )
    assert figures["runs"]["A"]["attention"] == "off" and figures["runs"]["B"]["attention"] == "momentum:0.3"
    assert "| B | `greedy` + momentum attention `momentum:0.3` |" in table
    assert model.config._attn_implementation == "sdpa"  # the shared model is restored


def test_the_alpha_slider_drives_the_momentum_penalty_seeded_like_nucleus(client) -> None:
    prompt = "My favourite food is pizza because"
    a, b, table, figures = client.predict(
        prompt=prompt,
        method_a="nucleus",
        method_b="momentum_penalty",
        alpha=0.3,
        top_k=7,  # momentum decoding's k: not a parameter of the penalty
        max_new_tokens=TOKENS,
        seed=4,
        api_name="/generate_text",
    )
    model, tokenizer = shared_smollm2()
    assert joined(a) == generate_text(model, tokenizer, prompt, method="nucleus", max_new_tokens=TOKENS, seed=4)
    assert joined(b) == generate_text(
        model, tokenizer, prompt, method="momentum_penalty", max_new_tokens=TOKENS, seed=4, alpha=0.3
    )
    assert figures["runs"]["B"]["params"] == {"alpha": 0.3} and figures["runs"]["A"]["params"] == {}
    assert "| B | `momentum_penalty` (alpha=0.3) |" in table


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"prompt": "   "}, "Enter a prompt to continue."),
        ({"attention_b": "momentum:7"}, "Momentum attention (B): `eta` must be a number in [0, 1), got 7.0."),
        ({"method_a": "beam"}, "Method A (left): Value: beam is not in the list of choices"),
        ({"max_new_tokens": 0}, "Max new tokens: Value 0 is less than minimum value 1."),
        ({"top_k": 50}, "Momentum top-k: Value 50 is greater than maximum value 20."),
        ({"method_b": "momentum_penalty", "alpha": 1.5}, "Momentum α (resistance): Value 1.5 is greater than maximum"),
    ],
)
def test_invalid_text_inputs_are_readable_errors(client, inputs, message) -> None:
    with pytest.raises(AppError) as info:
        client.predict(**{"max_new_tokens": 2, **inputs}, api_name="/generate_text")
    assert message in str(info.value)


def _image_request(i: int, model: str) -> dict:
    samplers = ["ghvb", "hb-dpm++", "default", "nt"]
    guidance = ["apg", "higs", "none", "apg+higs"]
    return {
        "model": model,
        "digit": i,
        "seed": 100 + i,
        "sampler": samplers[i % 4],
        "guidance": guidance[i % 4],
        "attention": "extrapolate" if i % 3 == 0 else "off",
        "steps": 6,
        "batch": 1,
        "compare": i % 2 == 0,
    }


def _fingerprint(endpoint: str, result: tuple) -> tuple:
    if endpoint == "/generate_text":
        return joined(result[0]), joined(result[1])
    gallery, slider = result[0], result[1]
    paths = [item["image"] for item in gallery] + list(slider or [])
    return tuple(np.asarray(Image.open(path).convert("RGB")).tobytes() for path in paths)


def test_eight_concurrent_requests_equal_the_same_requests_one_by_one(client, ui_app, tmp_path) -> None:
    from inertia.pipelines.image import load_image_pipeline

    folder = tmp_path / "second-model"
    load_image_pipeline(device="cpu").save_pretrained(folder)  # a second model: two pipelines run in parallel
    requests = [("/generate_image", _image_request(i, "digits" if i < 4 else str(folder))) for i in range(6)]
    requests += [
        ("/generate_text", {"prompt": "The old lighthouse keeper", "max_new_tokens": 6}),
        ("/generate_text", {"prompt": "Once upon a time", "max_new_tokens": 6, "method_a": "no_repeat_ngram"}),
    ]
    jobs = [client.submit(**inputs, api_name=endpoint) for endpoint, inputs in requests]
    together = [_fingerprint(endpoint, job.result(timeout=600)) for (endpoint, _), job in zip(requests, jobs)]
    alone = [_fingerprint(endpoint, client.predict(**inputs, api_name=endpoint)) for endpoint, inputs in requests]
    assert together == alone
    assert len(set(together)) == len(requests)  # eight different answers
