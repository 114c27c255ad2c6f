"""The message catalogues: one per language, the same keys and the same fields in each."""

import re

import pytest

from leaky.messages import LANGUAGES, get_messages, placeholders

JAPANESE = re.compile(r"[\u3040-\u30ff\u4e00-\u9fff]")


def test_every_language_has_the_same_keys():
    keys = {lang: get_messages(lang).keys() for lang in LANGUAGES}
    assert keys["en"] == keys["ja"], keys["en"] ^ keys["ja"]


@pytest.mark.parametrize("key", sorted(get_messages("en").keys()))
def test_translations_fill_the_same_fields(key):
    english, japanese = get_messages("en").entries[key], get_messages("ja").entries[key]
    assert placeholders(english) == placeholders(japanese), key


def test_japanese_sentences_are_japanese():
    ja = get_messages("ja")
    sentences = [k for k in ja.entries if k.rsplit(".", 1)[1] in ("claim", "question", "caption")]
    assert len(sentences) >= 20
    assert all(JAPANESE.search(ja.entries[k]) for k in sentences)


def test_missing_numbers_read_as_not_available():
    en = get_messages("en")
    text = en(
        "findings.slope.linear_costs.detail",
        best_slope=0.1,
        accuracy_difference=0.2,
        ci95=[float("nan"), float("nan")],
        p_value=float("nan"),
        n=1,
    )
    assert "95% CI n/a to n/a, p = n/a, 1 seeds" in text


def test_words_from_code_are_translated():
    ja = get_messages("ja")
    assert ja("findings.accuracy.leaky_better.claim", kind="image", task="digits-cnn") == (
        "画像認識で Leaky ReLU は ReLU より性能が良い（digits-cnn）"
    )
    assert ja.terms("not significant") == "有意差なし"
