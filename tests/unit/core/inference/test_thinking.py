"""Stripping <think> blocks, whole and streamed (core/inference/thinking.py)."""

from __future__ import annotations

import random

import pytest

from tollway.core.inference.thinking import ThinkStripper, strip_thinking

TEXTS = [
    ("<think>plan</think>\n\nAnswer.", "Answer."),
    ("Before <think>x</think> after", "Before after"),
    ("no tags at all < think > <thin", "no tags at all < think > <thin"),
    ("a<think>1</think>b<think>2</think>c", "abc"),
    ("<think>never closed", ""),
    ("x </thinking> y", "x </thinking> y"),
    ("<<think>>x</think>>", "<>"),
]


@pytest.mark.parametrize(("text", "expected"), TEXTS)
def test_strip_whole_text(text: str, expected: str) -> None:
    assert strip_thinking(text) == expected


def test_lone_closing_tag_drops_what_came_before() -> None:
    assert strip_thinking("reasoning here</think>\nThe answer") == "The answer"


@pytest.mark.parametrize(("text", "expected"), TEXTS)
def test_stream_state_machine_any_split_gives_the_same_text(text: str, expected: str) -> None:
    rng = random.Random(7)
    splits = [[text[:i], text[i:]] for i in range(len(text) + 1)]
    splits += [list(text)]  # one character per chunk
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(4, len(text))))
        splits.append([text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)])
    for pieces in splits:
        stripper = ThinkStripper()
        assert "".join(stripper.feed(p) for p in pieces) + stripper.flush() == expected, pieces


def test_stream_holds_back_only_a_possible_tag_start() -> None:
    stripper = ThinkStripper()
    assert stripper.feed("Hello <thi") == "Hello "
    assert stripper.feed("s is not a tag") == "<this is not a tag"
