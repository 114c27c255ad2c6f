"""The playground's lessons: valid presets, words in both languages, and each point shown."""

import pytest

from leaky.messages import LANGUAGES, get_messages
from leaky.playground import TrainingSession, validate_params
from leaky.playground.lessons import LESSONS, METRICS, Check, Lesson, get_lesson, measure

PARTS = ("title", "story", "try", "watch")


def test_the_lessons_tell_the_story_in_order():
    assert [lesson.key for lesson in LESSONS] == [
        "vanishing",
        "relu_keeps",
        "relu_dies",
        "leaky_flows",
        "prelu_learns",
        "born_dead",
        "costs_nothing",
    ]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.key)
def test_every_preset_is_valid_and_every_check_reads_a_network_it_trains(lesson):
    params, errors = validate_params(lesson.preset)
    assert not errors, errors
    assert lesson.checks and 1 <= lesson.steps <= 1000  # one "step" command of the page
    for check in lesson.checks:
        if check.metric == "born_dead":
            assert check.activation in ("relu", "leaky_relu")
        else:
            assert check.activation in params.activations()
    json = lesson.to_dict()
    assert json["preset"] == lesson.preset and len(json["checks"]) == len(lesson.checks)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_lesson_has_its_words_in_every_language(lang):
    entries = get_messages(lang).entries
    for lesson in LESSONS:
        for part in PARTS:
            assert entries[f"playground.lessons.{lesson.key}.{part}"].strip()
    for metric in METRICS:
        assert entries[f"playground.lessons.metric_{metric}"]


def test_bad_checks_and_unknown_lessons_are_named():
    with pytest.raises(ValueError, match="`metric` to be one of"):
        Check("deadness", "relu", at_most=0.1)
    with pytest.raises(ValueError, match="a check needs a bound"):
        Check("dead", "relu")
    with pytest.raises(ValueError, match="vanishing, relu_keeps"):
        get_lesson("gelu")
    assert isinstance(get_lesson("vanishing"), Lesson)


def _shown(lesson):
    """The lesson's view after its training steps (the born-dead estimate completed)."""
    session = TrainingSession(lesson.preset)
    before = session.snapshot()
    session.train(lesson.steps)
    while not session.born_dead.done:
        session.born_dead.advance()
    return before, session.snapshot()


@pytest.mark.slow  # trains every lesson and completes its born-dead estimate
@pytest.mark.parametrize("lesson", LESSONS, ids=lambda lesson: lesson.key)
def test_each_lesson_shows_its_point(lesson):
    before, after = _shown(lesson)
    values = {(c.metric, c.activation): measure(after, c) for c in lesson.checks}
    assert all(check.holds(after) for check in lesson.checks), values
    if lesson.key in ("relu_dies", "leaky_flows"):
        # Dying happens in training: the ReLU network starts with fewer dead units.
        relu = Check("dead", "relu", at_least=0.0)
        assert measure(before, relu) < 0.5 * measure(after, relu)
    if lesson.key == "prelu_learns":
        assert measure(before, lesson.checks[0]) == pytest.approx(0.0, abs=1e-7)
