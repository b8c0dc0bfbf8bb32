"""benchmarks.decoding.vllm_throughput: its arguments and its repetition measure (the timed run needs vLLM's own
environment, ``make test-vllm``; docs/hosts/vllm.md reports it)."""

import pytest

from benchmarks.decoding import vllm_throughput


def test_rep4_counts_repeated_token_4grams() -> None:
    assert vllm_throughput.rep4([[1, 2, 3, 4, 5]]) == 0.0
    assert vllm_throughput.rep4([[1, 2, 3, 4, 1, 2, 3, 4]]) == pytest.approx(1 - 4 / 5)
    assert vllm_throughput.rep4([[1, 2, 3, 4], [1, 2, 3, 4]]) == 0.5  # across continuations too
    assert vllm_throughput.rep4([[1, 2]]) == 0.0


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["run", "--model", "m", "--prompts", "12"], "--prompts"),
        (["run", "--model", "m", "--prompts", "0"], "--prompts"),
        (["run", "--model", "m", "--max-tokens", "0"], "--max-tokens"),
        (["run"], "--model"),
    ],
)
def test_bad_arguments_are_named_before_anything_loads(argv, named, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        vllm_throughput.main(argv)
    assert info.value.code == 2 and named in capsys.readouterr().err
