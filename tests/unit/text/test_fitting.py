"""Text fitting with real Japanese notices: counts, as-is, threads, shortening, emergency texts."""

from __future__ import annotations

import grapheme
import pytest
from twitter_text import parse_tweet

from koho.text import TextDoesNotFit, TextError, UnknownPlatform, count, fit, japanese, rules_for
from koho.text.fitting import protected_spans
from koho.text.rules import TextRule, count_codepoints, count_graphemes, count_threads

LINK = "https://www.city.koho.example.jp/kurashi/gomi/nenmatsu.html"
MORE = "https://www.city.koho.example.jp/news/2026/1225.html"
FAMILY = "👨‍👩‍👧‍👦"

GOMI = (
    "年末年始のごみ収集についてお知らせします。12月29日から1月3日までは、燃えるごみ・燃えないごみ・"
    "資源ごみの収集をお休みします。12月28日までに出せなかったごみは、1月4日以降の収集日に出してください。"
    "粗大ごみ受付センターも同じ期間はお休みです。ご協力をお願いします。"
)
KOSODATE = (
    "子育て支援センター「すくすく」からのお知らせです。毎週火曜日の午前中は、0歳から3歳までのお子さんと保護者の方が"
    "自由に遊べる広場を開いています。予約は不要です！保育士が子育ての相談にも応じます。"
    "駐車場に限りがありますので、できるだけ公共交通機関をご利用ください。持ち物はタオルと飲み物です。"
    "体調の悪いときはお休みください。皆さんのお越しをお待ちしています。"
)
BOUSAI = (
    "【避難指示】湖北川の水位が氾濫危険水位に達しました。川沿いの北町・南町・東町の皆さんは、直ちに近くの避難所へ"
    "避難してください。避難所は湖北小学校、湖北中学校、市民会館です。夜間の移動が危険な場合は、自宅の2階以上など"
    "安全な場所にとどまってください。最新の情報は市のホームページと防災無線でお知らせします。"
)


def _x(text: str) -> int:
    return parse_tweet(text).weightedLength


# ----------------------------------------------------------------------------- counting


def test_each_platform_counts_its_own_way():
    assert count("x", "ごみ") == 4  # CJK weighs 2
    assert count("x", "gomi") == 4
    assert count("x", LINK) == 23  # every URL is 23
    assert count("x", FAMILY) == 2 and count("x", "🇯🇵") == 2 and count("x", "👍🏽") == 2
    assert count("bluesky", f"{FAMILY}🇯🇵👍🏽が") == 4  # graphemes
    assert count("mastodon", f"{LINK} @koho@social.example.jp") == 23 + 1 + len("@koho")
    assert count("threads", "🍎あ") == 4 + 1  # emoji by UTF-8 bytes
    assert count("line", "🍎あ") == 2 + 1  # UTF-16 code units
    assert count("instagram", FAMILY) == 11


def test_rules_defaults_and_overrides():
    x = rules_for("x")
    assert (x.max_length, x.supports_thread, x.url_length) == (280, True, 23)
    assert rules_for("instagram").image_required and rules_for("instagram").max_hashtags == 30
    assert rules_for("line").max_length == 5000 and not rules_for("line").supports_thread
    assert rules_for("website").max_length is None
    assert not rules_for("youtube").publish
    assert rules_for("mastodon", {"mastodon": 1000}).max_length == 1000
    assert rules_for("newsletter", {"newsletter": 120}).max_length == 120
    assert rules_for("x", {"mastodon": 1000}).max_length == 280
    assert rules_for("X").name == "x"
    with pytest.raises(UnknownPlatform, match="tiktok"):
        rules_for("tiktok")


# ----------------------------------------------------------------------------- as is


def test_a_short_notice_goes_as_is_with_link_and_hashtags():
    fitted = fit("x", "燃えるごみの収集日が変わります。", link=LINK, hashtags=["ごみ", "#湖北市"])
    assert fitted.strategy == "as_is"
    assert fitted.parts == [f"燃えるごみの収集日が変わります。\n{LINK}\n#ごみ #湖北市"]
    assert fitted.lengths == [_x(fitted.parts[0])] and fitted.limit == 280


def test_hashtags_and_links_already_in_the_text_are_not_repeated():
    text = f"#防災 訓練のお知らせ {LINK}"
    fitted = fit("bluesky", text, link=LINK, hashtags=["防災", "ＢＯＵＳＡＩ", "bousai"])
    assert fitted.parts == [f"{text}\n#ＢＯＵＳＡＩ"]  # "bousai" repeats ＢＯＵＳＡＩ once NFKC-folded


def test_invalid_input_is_a_clear_error():
    with pytest.raises(TextError, match="not a valid hashtag"):
        fit("x", "本文", hashtags=["防災 訓練"])
    with pytest.raises(TextError, match="unknown fitting mode"):
        fit("x", "本文", mode="loud")


def test_unlimited_website_takes_everything():
    fitted = fit("website", GOMI * 50, link=LINK)
    assert fitted.strategy == "as_is" and fitted.limit is None


# ----------------------------------------------------------------------------- threads


def test_long_notice_becomes_a_numbered_thread_cut_at_sentences():
    fitted = fit("x", KOSODATE + GOMI, link=LINK, hashtags=["子育て"])
    n = len(fitted.parts)
    assert fitted.strategy == "thread" and n >= 2
    for i, (part, (a, b)) in enumerate(zip(fitted.parts, fitted.spans, strict=True), 1):
        body = (KOSODATE + GOMI)[a:b]
        assert part.startswith(f"{body} ({i}/{n})")
        assert body.endswith(("。", "！"))  # every cut at a sentence end
        assert _x(part) <= 280
    assert fitted.lengths == [_x(p) for p in fitted.parts]
    assert "#子育て" in fitted.parts[0] and all("#子育て" not in p for p in fitted.parts[1:])
    assert fitted.parts[-1].endswith(LINK) and all(LINK not in p for p in fitted.parts[:-1])


def test_a_sentence_longer_than_the_limit_is_cut_between_words():
    sentence = (
        "防災訓練では消火器の使い方と心肺蘇生の方法と避難所の開設手順と非常食の配り方と安否確認の方法を"
        "学べるほか地域の皆さんと一緒に避難経路を歩いて危険な場所を確かめることもできます"
    ) * 5
    fitted = fit("bluesky", sentence)
    assert fitted.strategy == "thread"
    token_ends = {e for _, e in japanese.token_spans(sentence)}
    for _, b in fitted.spans[:-1]:
        assert b in token_ends
    assert all(len(list(grapheme.graphemes(p))) <= 300 for p in fitted.parts)


def test_a_run_of_emoji_is_cut_between_graphemes_only():
    text = FAMILY * 200 + "🇯🇵" * 200  # no words, no sentences: only grapheme boundaries are left
    fitted = fit("bluesky", text)
    assert fitted.strategy == "thread"
    for a, b in fitted.spans:
        body = text[a:b]
        assert body.replace(FAMILY, "").replace("🇯🇵", "") == ""  # only whole families and whole flags
    assert sum(count_graphemes(text[a:b]) for a, b in fitted.spans) == 400


def test_urls_hashtags_and_mentions_are_never_cut():
    long_url = "https://www.city.koho.example.jp/" + "kankou/" * 20 + "map.html"
    text = ("観光マップを更新しました" + " " + long_url + " #湖北観光 @koho_city " + "ぜひご覧ください") * 6
    fitted = fit("threads", text)
    atoms = protected_spans(text)
    assert any(text[s:e] == long_url for s, e in atoms)
    for s, e in atoms:
        assert any(a <= s and e <= b for a, b in fitted.spans), text[s:e]


def test_link_gets_its_own_part_when_the_last_text_leaves_no_room():
    rule = TextRule("tiny", 40, count_graphemes, supports_thread=True)
    link = "https://example.jp/" + "x" * 11  # 30 characters
    fitted = fit("tiny", "お知らせです。#" + "防" * 25, link=link, rule=rule)
    assert fitted.parts == ["お知らせです。 (1/3)", "#" + "防" * 25 + " (2/3)", f"(3/3)\n{link}"]
    assert all(n <= 40 for n in fitted.lengths)
    with pytest.raises(TextDoesNotFit, match=r"tiny: .*limit 40"):
        fit("tiny", "お知らせです。#" + "防" * 25, link=link + "y" * 10, rule=rule)


def test_part_numbers_with_two_digits_still_fit():
    fitted = fit("x", BOUSAI * 12)
    assert len(fitted.parts) >= 10
    assert fitted.parts[9].split("\n")[0].endswith(f"(10/{len(fitted.parts)})")
    assert all(_x(p) <= 280 for p in fitted.parts)


def test_a_link_part_that_makes_the_tenth_part_widens_every_number():
    # Eight sentences fill eight parts exactly as "(n/9)", a hashtag (never cut) the ninth; the
    # link does not fit beside it and needs a part of its own, the tenth: numbered "(n/10)", every
    # part is one character longer than when it was measured "(n/9)".
    rule = TextRule("tiny", 20, count_codepoints, supports_thread=True)
    link = "https://a.jp"
    text = ("防" * 13 + "。") * 8 + "#" + "防" * 11
    assert [len(p) for p in fit("tiny", text, rule=rule).parts] == [20] * 8 + [18]  # "防…防。 (n/9)"
    fitted = fit("tiny", text, link=link, rule=rule)
    n = len(fitted.parts)
    assert n >= 10 and fitted.parts[-1].endswith(link)
    assert fitted.lengths == [len(p) for p in fitted.parts] and all(length <= 20 for length in fitted.lengths)
    for i, (part, (a, b)) in enumerate(zip(fitted.parts, fitted.spans, strict=True), 1):
        assert part.startswith(f"{text[a:b]} ({i}/{n})".lstrip())
    # A hashtag one longer fits no part numbered "(10/..)" or later: a clear error, not the bug guard.
    with pytest.raises(TextDoesNotFit, match="smallest piece"):
        fit("tiny", text + "防", link=link, rule=rule)


def test_threads_regression_link_part_crossing_ten_parts():
    # The falsifying example hypothesis found (test_fitting_properties): with a limit of 150 the
    # greedy split made nine parts measured as "(n/9)" plus a part for the link alone, so the
    # sixth part, at exactly 150 as "(6/9)", was sent as "(6/10)": 151.
    gomi = "燃えるごみは月曜日と木曜日に出してください。"
    nenmatsu = "年末年始は収集日が変わります！"
    calendar = "https://www.city.koho.example.jp/kurashi/gomi/calendar2026.html"
    koho = "http://koho.example.jp"
    kankou = "https://koho.example.jp/" + "kankou/" * 12 + "map.pdf"  # 115 characters, never cut
    text = (
        gomi * 17 + "、" + gomi * 9 + nenmatsu * 4 + "防災訓練に参加しませんか？観光案内所で、湖北市の地図を無料で"
        f"配っています。市民会館（中央町1-2-3） {calendar}  {koho}  {koho}  #防災 {nenmatsu} {calendar}  {kankou} "
    )
    link = "https://www.city.koho.example.jp/info"
    rule = rules_for("threads", {"threads": 150})
    fitted = fit("threads", text, link=link, rule=rule)
    n = len(fitted.parts)
    assert fitted.strategy == "thread" and n >= 10
    assert fitted.lengths == [count_threads(p) for p in fitted.parts]
    assert all(length <= 150 for length in fitted.lengths)
    assert fitted.parts[-1].endswith(link)
    for i, (part, (a, b)) in enumerate(zip(fitted.parts, fitted.spans, strict=True), 1):
        assert part.startswith(f"{text[a:b]} ({i}/{n})".lstrip())
    for s, e in protected_spans(text):
        assert any(a <= s and e <= b for a, b in fitted.spans), text[s:e]


def test_max_parts_bounds_a_thread():
    with pytest.raises(TextDoesNotFit, match="at most 3"):
        fit("x", BOUSAI * 4, max_parts=3)


# ----------------------------------------------------------------------------- shortened


def test_more_url_shortens_at_a_sentence_with_ellipsis():
    fitted = fit("x", KOSODATE + GOMI, more_url=MORE, hashtags=["子育て"])
    assert fitted.strategy == "shortened" and len(fitted.parts) == 1
    (a, b), part = fitted.spans[0], fitted.parts[0]
    assert a == 0 and (KOSODATE + GOMI)[:b].endswith(("。", "！"))
    assert part == f"{(KOSODATE + GOMI)[:b]}…\n{MORE}\n#子育て"
    assert _x(part) <= 280


def test_threads_not_allowed_and_no_more_url_is_an_error_naming_the_numbers():
    with pytest.raises(TextDoesNotFit) as err:
        fit("x", KOSODATE, allow_thread=False)
    message = str(err.value)
    assert message.startswith("x:") and "limit 280" in message and f"counted {_x(KOSODATE)}" in message
    assert fit("x", KOSODATE, allow_thread=False, more_url=MORE).strategy == "shortened"


def test_instagram_cannot_thread_so_it_needs_more_url():
    caption = (KOSODATE + GOMI + BOUSAI) * 5
    with pytest.raises(TextDoesNotFit, match=r"instagram: .*limit 2200"):
        fit("instagram", caption)
    fitted = fit("instagram", caption, more_url=MORE)
    assert fitted.strategy == "shortened" and fitted.lengths[0] <= 2200


def test_instagram_allows_at_most_30_hashtags():
    tags = [f"湖北{i}" for i in range(31)]
    with pytest.raises(TextDoesNotFit, match="31 hashtags in one post, at most 30"):
        fit("instagram", "観光キャンペーン実施中！", hashtags=tags)
    assert fit("instagram", "観光キャンペーン実施中！", hashtags=tags[:30]).strategy == "as_is"


def test_mastodon_counts_each_url_as_23():
    urls = " ".join(f"https://www.city.koho.example.jp/kankou/spot/{i:03d}/index.html" for i in range(12))
    text = "観光スポット一覧です。" + urls
    assert len(text) > 500
    fitted = fit("mastodon", text)
    assert fitted.strategy == "as_is" and fitted.lengths[0] == 11 + 12 * 23 + 11


def test_threads_counts_emoji_by_bytes():
    text = "🍎" * 130  # 130 graphemes, 520 by Threads' count
    fitted = fit("threads", text)
    assert fitted.strategy == "thread" and all(n <= 500 for n in fitted.lengths)


def test_configured_limit_applies():
    fitted = fit("newsletter", GOMI, rule=rules_for("newsletter", {"newsletter": 60}), more_url=MORE)
    assert fitted.strategy == "shortened" and fitted.lengths[0] <= 60 and fitted.limit == 60


# ----------------------------------------------------------------------------- emergency


def test_emergency_thread_keeps_the_words_exactly_and_adds_no_hashtags():
    text = BOUSAI * 2
    fitted = fit("x", text, mode="emergency", hashtags=["防災"], link=LINK)
    assert fitted.strategy == "thread"
    assert all("#防災" not in p for p in fitted.parts)
    rebuilt = "".join(text[a:b] for a, b in fitted.spans)
    assert rebuilt == text.replace(" ", "")
    for part, (a, b) in zip(fitted.parts, fitted.spans, strict=True):
        assert part.startswith(text[a:b])


def test_emergency_on_a_platform_without_replies_needs_more_url():
    long_alert = BOUSAI * 40  # over LINE's 5,000
    with pytest.raises(TextDoesNotFit, match="never reworded"):
        fit("line", long_alert, mode="emergency")
    fitted = fit("line", long_alert, mode="emergency", more_url=MORE)
    (a, b) = fitted.spans[0]
    assert fitted.strategy == "shortened"
    assert fitted.parts[0] == f"{long_alert[a:b]}…\n{MORE}" and a == 0
    assert fitted.lengths[0] <= 5000


def test_emergency_text_that_fits_is_sent_unchanged():
    fitted = fit("bluesky", BOUSAI, mode="emergency", hashtags=["防災"])
    assert fitted.parts == [BOUSAI] and fitted.strategy == "as_is"


# ----------------------------------------------------------------------------- Bluesky's byte cap

FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"  # one grapheme, 25 UTF-8 bytes


def test_bluesky_fits_by_graphemes_and_by_utf8_bytes():
    # 300 graphemes, 3,100 bytes: within maxGraphemes, over the record's maxLength of 3,000 bytes.
    text = "防災" * 100 + FAMILY * 100
    assert count("bluesky", text) == 300 and len(text.encode("utf-8")) == 3100
    fitted = fit("bluesky", text)
    assert fitted.strategy == "thread"
    assert all(len(p.encode("utf-8")) <= 3000 and grapheme.length(p) <= 300 for p in fitted.parts)
    assert "".join(text[a:b] for a, b in fitted.spans) == text


def test_bluesky_text_over_the_bytes_without_a_way_out_says_bytes():
    with pytest.raises(TextDoesNotFit, match=r"3,100 UTF-8 bytes, at most 3,000"):
        fit("bluesky", "防災" * 100 + FAMILY * 100, allow_thread=False)


def test_byte_cap_is_bluesky_s_alone():
    text = FAMILY * 150  # 3,750 bytes: Mastodon counts 150 graphemes and takes it whole
    assert fit("mastodon", text).strategy == "as_is"
