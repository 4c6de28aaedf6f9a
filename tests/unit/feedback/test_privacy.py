"""Personal data masked for digests: what residents write, as they write it; numbers that only
look like personal data stay."""

from __future__ import annotations

import pytest

from koho.feedback.privacy import mask


@pytest.mark.parametrize(
    ("text", "masked", "kind"),
    [
        ("電話は090-1234-5678です", "電話は［電話番号］です", "phone"),
        ("09012345678まで", "［電話番号］まで", "phone"),
        ("０３－１２３４－５６７８にお願いします", "［電話番号］にお願いします", "phone"),
        ("自宅047(445)1141です", "自宅［電話番号］です", "phone"),
        ("+81-90-1234-5678", "［電話番号］", "phone"),
        ("0120-123-456へ", "［電話番号］へ", "phone"),
        ("090ー1234ー5678", "［電話番号］", "phone"),
        ("メールはtaro.yamada@example.co.jpです", "メールは［メールアドレス］です", "email"),
        ("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｊｐ", "［メールアドレス］", "email"),
        ("番号は6214 9832 0257です", "番号は［個人番号］です", "my_number"),
        ("６２１４９８３２０２５７", "［個人番号］", "my_number"),
        ("東京都千代田区丸の内1-2-3に住んでいます", "［住所］に住んでいます", "address"),
        ("千葉県鎌ケ谷市新鎌ケ谷二丁目6番1号の前の道路", "［住所］の前の道路", "address"),
        ("うちは中央町3丁目5-8です", "うちは［住所］です", "address"),
        ("鎌ケ谷市道野辺12番地の3", "［住所］", "address"),
    ],
)
def test_personal_data_is_masked(text: str, masked: str, kind: str) -> None:
    result = mask(text)

    assert result.text == masked
    assert result.counts == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "注文番号621498320258",  # 12 digits, wrong check digit: not a My Number
        "2024-12-04に開催",
        "鎌ケ谷市の保育園",
        "会議は10時から12時、定員30名",
        "1234-5678-9012",
        "予算は0.5億円",
        "12番地の3",  # a lot number with no place is no address
    ],
)
def test_lookalikes_stay(text: str) -> None:
    assert mask(text).text == text


def test_several_kinds_in_one_comment_keep_the_rest_as_written() -> None:
    result = mask("ＡＢＣ保育園の件、090-1111-2222かa@b.jpに。千葉県鎌ケ谷市新鎌ケ谷2-6-1です")

    assert result.text == "ＡＢＣ保育園の件、［電話番号］か［メールアドレス］に。［住所］です"
    assert result.counts == {"phone": 1, "email": 1, "address": 1}


@pytest.mark.parametrize(
    "text",
    [
        "0" * 50_000,
        "a@" * 25_000,
        "東京都" * 15_000,
        "1-" * 25_000,
        "東京都" + "市" * 40 + "x",  # nested place-name quantifiers once backtracked exponentially here
        "区" * 20_000,
        "\x00\u202e\ud800",
        "😀" * 20_000,
        None,
    ],
)
def test_hostile_input_never_crashes_masking(text: object) -> None:
    assert isinstance(mask(text).text, str)
