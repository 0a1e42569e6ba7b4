"""Prompt parsing: only trailing numbers are weights or stops."""

import math

import pytest

from vqclip.errors import UsageError
from vqclip.steer.prompts import Prompt, parse_prompt, parse_prompt_sets


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ("a red circle", Prompt("a red circle")),
        ("photo: a cat", Prompt("photo: a cat")),
        ("a:b:1.5", Prompt("a:b", 1.5)),
        ("x:-1", Prompt("x", -1.0)),
        ("sky:2:0.8", Prompt("sky", 2.0, 0.8)),
        ("sky:1:-inf", Prompt("sky", 1.0, -math.inf)),
        ("  padded text  :0.5 ", Prompt("padded text", 0.5)),
        ("https://example.com/cat.png", Prompt("https://example.com/cat.png")),
        ("https://example.com/cat.png:0.5", Prompt("https://example.com/cat.png", 0.5)),
        ("http://localhost:8080", Prompt("http://localhost:8080")),
        (r"C:\art\cat.png", Prompt(r"C:\art\cat.png")),
        (r"C:\art\cat.png:2", Prompt(r"C:\art\cat.png", 2.0)),
        ("a photo: 1990s", Prompt("a photo: 1990s")),
        ("ratio 1e-3:1e-3", Prompt("ratio 1e-3", 1e-3)),
    ],
)
def test_parse_prompt(item: str, expected: Prompt) -> None:
    assert parse_prompt(item) == expected


def test_sets_and_items_split_and_skip_empty_items() -> None:
    sets = parse_prompt_sets("a red square | | blue:-0.5 ^ a green circle")
    assert sets == [[Prompt("a red square"), Prompt("blue", -0.5)], [Prompt("a green circle")]]


@pytest.mark.parametrize("spec", ["", "   ", "a ^ ", "| |"])
def test_empty_sets_are_refused(spec: str) -> None:
    with pytest.raises(UsageError, match="empty"):
        parse_prompt_sets(spec)


def test_weight_without_text_is_refused() -> None:
    with pytest.raises(UsageError, match="no text"):
        parse_prompt(":2")


def test_the_text_template_holds_every_text_prompt_and_negative_but_not_the_labels() -> None:
    from vqclip.run.config import build_config
    from vqclip.steer.prompts import plan_prompts

    cfg, _ = build_config(flags={"prompt": "a red square:2 | {x}", "negative": "a blob"},
                          dotlist=["text_template=a large {}"])
    plan = plan_prompts(cfg)
    assert [(p.text, p.weight) for p in plan.stages[0].prompts] == [("a large a red square", 2.0),
                                                                     ("a large {x}", 1.0)]
    assert [p.text for p in plan.negatives] == ["a large a blob"]
    assert plan.stages[0].label == "a red square:2 | {x}"  # as written, for the log


@pytest.mark.parametrize("template", ["a large", "{} and {}"])
def test_a_template_without_one_place_for_the_prompt_is_refused(template: str) -> None:
    from vqclip.errors import ConfigError
    from vqclip.run.config import build_config

    with pytest.raises(ConfigError, match=r"text_template=.*must hold \{\} once"):
        build_config(flags={"prompt": "a cat"}, dotlist=[f"text_template='{template}'"])


def test_a_set_value_that_is_not_yaml_is_one_line_naming_it() -> None:
    from vqclip.errors import ConfigError
    from vqclip.run.config import build_config

    with pytest.raises(ConfigError) as caught:
        build_config(flags={"prompt": "a cat"}, dotlist=["steps=3", "negative={} and {}"])
    assert str(caught.value).startswith("--set 'negative={} and {}': the value is not valid YAML (")
    assert str(caught.value).endswith("quote it: negative='{} and {}'") and "\n" not in str(caught.value)
