"""Reward functions of chapter 7, checked without a model (open-r1 style), adversarial outputs included."""

import pytest

from infir_lib.config import ConfigError
from infir_lib.rl import rewards as R

GOOD = "<think>3+4=7.</think><answer>7</answer>"


def conv(text):
    return [{"role": "assistant", "content": text}]


@pytest.mark.parametrize("text,expected", [
    (GOOD, 1.0),
    ("  <think>a</think>\n<answer>7</answer>\n", 1.0),
    ("<think>3+4=7.</think>", 0.0),                                   # missing answer
    ("<answer>7</answer>", 0.0),                                      # missing think
    ("<think>x</think><answer>7</answer> and more", 0.0),             # trailing text
    ("<think>x</think><answer>7</answer><answer>8</answer>", 0.0),    # several answers
    ("<think>x<think>y</think><answer>7</answer>", 0.0),              # nested/duplicated tag
    ("<answer>7</answer><think>x</think>", 0.0),                      # wrong order
    ("", 0.0),
])
def test_format_reward(text, expected):
    assert R.format_reward([text]) == [expected]
    assert R.format_reward([conv(text)]) == [expected]


def test_format_box_needs_a_box():
    good = "<think>it is there</think><answer>[1, 2, 30, 40]</answer>"
    bad = "<think>it is there</think><answer>top left</answer>"
    assert R.format_reward([good, bad], answer_type=["box", "box"]) == [1.0, 0.0]
    assert R.format_reward([bad], answer_type=["math"]) == [1.0]


def test_tag_count_partial_credit():
    assert R.tag_count_reward([GOOD, "<think>x</think>", "nothing", "<think><think></think>"]) == [1.0, 0.5, 0.0, 0.25]


def test_extract_answer_rejects_several():
    assert R.extract_answer(GOOD) == "7"
    assert R.extract_answer("<answer>1</answer><answer>2</answer>") is None
    assert R.extract_answer("no tags") is None


@pytest.mark.parametrize("answer,gold,expected", [
    ("7", "7", 1.0), ("7.0", "7", 1.0), ("14/2", "7", 1.0), ("8", "7", 0.0), ("", "7", 0.0),
    ("\\frac{1}{2}", "0.5", 1.0), ("seven", "7", 0.0),
])
def test_math_accuracy(answer, gold, expected):
    assert R.REWARDS["math"]([f"<think>.</think><answer>{answer}</answer>"], solution=[gold]) == [expected]


def test_math_accuracy_several_answers_get_zero():
    hedge = "<think>.</think><answer>7</answer><answer>8</answer>"
    assert R.REWARDS["math"]([hedge], solution=["7"]) == [0.0]
    assert R.REWARDS["math"](["7"], solution=["7"]) == [0.0]  # right number, no tags


@pytest.mark.parametrize("answer,gold,expected", [
    ("yes", "yes", 1.0), ("Yes.", "yes", 1.0), ("no", "yes", 0.0), ("yes, no", "yes", 0.0),
    ("maybe", "no", 0.0), ("yes yes", "yes", 0.0),
])
def test_yes_no_accuracy(answer, gold, expected):
    assert R.REWARDS["yes_no"]([f"<think>.</think><answer>{answer}</answer>"], solution=[gold]) == [expected]


@pytest.mark.parametrize("answer,gold,expected", [
    ("B", "B", 1.0), ("(B)", "B", 1.0), ("B. 7 apples", "B", 1.0), ("A", "B", 0.0),
    ("A, B", "B", 0.0),            # listing every option is wrong
    ("B, A", "AB", 1.0),           # several right options: the set must match, in any order
    ("A, B, A", "AB", 1.0), ("a", "A", 0.0), ("", "A", 0.0),
])
def test_choice_accuracy(answer, gold, expected):
    assert R.REWARDS["choice"]([f"<think>.</think><answer>{answer}</answer>"], solution=[gold]) == [expected]


@pytest.mark.parametrize("answer,expected", [
    ("[10, 10, 50, 50]", 1.0),           # exact
    ("[12, 12, 52, 52]", 1.0),           # IoU ~ 0.82
    ("[30, 30, 70, 70]", 0.0),           # IoU ~ 0.14
    ("[50, 50, 10, 10]", 0.0),           # malformed: corners swapped
    ("[10, 10, 50]", 0.0),               # malformed: three numbers
    ("[10, 10, 50, 50] [0, 0, 5, 5]", 0.0),  # several boxes
    ("the box is at the top", 0.0),
])
def test_iou_accuracy(answer, expected):
    assert R.REWARDS["iou"]([f"<think>.</think><answer>{answer}</answer>"], solution=["[10, 10, 50, 50]"]) == [expected]


def test_iou_value():
    assert R.iou([0, 0, 2, 2], [1, 1, 3, 3]) == pytest.approx(1 / 7)


def test_label_set_accuracy():
    f = R.REWARDS["label_set"]
    c = lambda a: f"<think>.</think><answer>{a}</answer>"
    assert f([c("cat, dog")], solution=["dog, cat"]) == [1.0]
    assert f([c("cat")], solution=["dog, cat"]) == [0.5]
    assert f([c("cat, dog, bird, fish")], solution=["dog, cat"]) == [0.5]   # over-listing is penalised
    assert f([c("cow")], solution=["dog"]) == [0.0]
    assert f(["cat, dog"], solution=["dog, cat"]) == [0.0]                 # no answer block


def test_accuracy_dispatches_on_answer_type():
    comps = ["<think>.</think><answer>yes</answer>", "<think>.</think><answer>C</answer>",
             "<think>.</think><answer>12</answer>", "<think>.</think><answer>C</answer>"]
    out = R.accuracy_reward(comps, solution=["yes", "C", "12", "12"], answer_type=["yes_no", "choice", "math", "math"])
    assert out == [1.0, 1.0, 1.0, 0.0]


def test_accuracy_missing_column_is_clear():
    with pytest.raises(ValueError, match="solution"):
        R.accuracy_reward([GOOD], answer_type=["math"])
    with pytest.raises(ValueError, match="answer_type"):
        R.accuracy_reward([GOOD], solution=["7"], answer_type=["nope"])


def test_registry_names_and_weights():
    funcs, weights = R.get_reward_funcs(["accuracy", "format"], [1.0, 0.5])
    assert funcs == [R.accuracy_reward, R.format_reward] and weights == [1.0, 0.5]
    with pytest.raises(ConfigError, match="known rewards"):
        R.get_reward_funcs(["acuracy"])
    with pytest.raises(ConfigError, match="reward_weights"):
        R.get_reward_funcs(["accuracy", "format"], [1.0])


def test_total_reward_in_zero_two():
    comps = [GOOD, "<think>.</think><answer>8</answer>", "7"]
    out = R.total_reward(comps, ["accuracy", "format"], solution=["7"] * 3, answer_type=["math"] * 3)
    assert out == [2.0, 1.0, 0.0]
