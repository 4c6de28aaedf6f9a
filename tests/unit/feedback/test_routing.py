"""Routing: departments by normalised keywords and synonyms, several matches, the answered post,
the PR fallback, and comments that try to break the tokenizer."""

from __future__ import annotations

import pytest

from koho.config.schema import Department
from koho.feedback.routing import AnsweredPost, Router


def test_keywords_route_with_a_reason_a_person_can_read(router: Router) -> None:
    routing = router.route("保育園の入園について教えてください")

    assert routing.department_ids == ["childcare"]
    assert routing.reason == "「保育園」「入園」 → こども支援課"
    assert not routing.fallback


def test_synonym_routes_as_its_keyword_and_the_reason_names_the_word_written(router: Router) -> None:
    routing = router.route("保育所の申し込みはいつからですか")

    assert routing.department_ids == ["childcare"]
    assert "「保育所（保育園）」" in routing.reason


def router_for(dept_id: str, *keywords: str) -> Router:
    """A router with one department of ``keywords`` beside a PR section."""
    dept = Department(id=dept_id, name=f"{dept_id}課", email="d@city.example.jp", keywords=list(keywords))
    pr = Department(id="pr", name="広報課", email="p@city.example.jp", keywords=["広報"])
    return Router([dept, pr], "pr")


def test_keywords_match_by_normalized_form_not_spelling() -> None:
    router = router_for("kids", "子供")

    assert router.route("こどもの遊び場がほしい").department_ids == ["kids"]
    assert router.route("子どもの遊び場がほしい").department_ids == ["kids"]
    assert router.route("ｺﾄﾞﾓの遊び場").department_ids == ["kids"]  # half-width kana: NFKC first


def test_a_word_inside_a_longer_word_is_not_a_match() -> None:
    router = router_for("roads", "歩道")

    assert router.route("歩道が狭い").department_ids == ["roads"]
    assert router.route("歩道橋の階段が急です").department_ids == ["pr"]


def test_no_keyword_falls_back_to_the_pr_section(router: Router) -> None:
    routing = router.route("こんにちは、いつも見ています")

    assert routing.fallback
    assert routing.department_ids == ["pr"]
    assert routing.reason == "担当課のキーワードなし → 秘書広報課"


def test_an_item_for_two_departments_is_shared_with_both(router: Router) -> None:
    routing = router.route("台風で道路が冠水して、避難所までの歩道も危ないです")

    assert set(routing.department_ids) == {"roads", "disaster"}
    assert "道路河川課" in routing.reason and "危機管理課" in routing.reason


def test_a_clear_winner_is_not_shared_with_a_passing_mention(router: Router) -> None:
    routing = router.route("道路の陥没と側溝の詰まりがひどい。保育園の近くです")

    assert routing.department_ids == ["roads"]


def test_repeating_a_word_is_not_a_new_topic(router: Router) -> None:
    routing = router.route("ごみ、ごみ、ごみ、ごみ。保育園の入園が心配")

    assert routing.primary == "childcare"  # 2 keywords beat one keyword said four times (1 + 3 x 0.25)
    assert "garbage" in routing.department_ids


def test_a_reply_under_a_child_rearing_post_leans_to_that_department(router: Router) -> None:
    post = AnsweredPost(text="保育園の入園申し込みの受付を始めました")

    assert router.route("いつまでですか？", post).department_ids == ["childcare"]
    assert router.route("いつまでですか？", post).reason == "返信先の投稿 → こども支援課"
    assert router.route("いつまでですか？").department_ids == ["pr"]


def test_the_answered_post_tips_a_tie_but_does_not_outweigh_what_the_comment_says(router: Router) -> None:
    by_department = AnsweredPost(department="tourism")

    tie = router.route("道路と保育園", AnsweredPost(department="childcare"))
    strong = router.route("道路の陥没と側溝と街灯", by_department)

    assert tie.primary == "childcare" and "＋返信先の投稿" in tie.reason
    assert strong.primary == "roads"


def test_an_item_with_text_attribute_or_key_routes_like_its_text(router: Router) -> None:
    class Item:
        text = "ゴミの収集日"

    assert router.route(Item()).primary == "garbage"
    assert router.route({"text": "ゴミの収集日"}).primary == "garbage"
    assert router.route({"text": None}).fallback


def test_a_keyword_of_several_morphemes_matches_their_sequence() -> None:
    router = router_for("garbage", "不法投棄")

    assert router.route("空き地に不法投棄があります").department_ids == ["garbage"]
    assert router.route("不法な投棄").department_ids == ["pr"]


def test_pr_department_must_exist() -> None:
    dept = Department(id="roads", name="道路課", email="d@city.example.jp", keywords=["道路"])
    with pytest.raises(ValueError, match="PR department 'pr'"):
        Router([dept], "pr")


@pytest.mark.parametrize(
    "text",
    [
        "保育園\x00の入園",
        "\u202e保育園の入園\u202c",
        "<script>alert('保育園')</script><b>入園</b>",
        "😀" * 20_000,
        "保育園の入園" + "あ" * 60_000,
        "\ud800保育園の入園",
        "ﷺ" * 8_000 + "保育園",
        "",
        "\n\n\t ",
    ],
    ids=["nul", "rtl", "html", "emoji", "long", "lone-surrogate", "nfkc-expands", "empty", "blank"],
)
def test_hostile_text_never_crashes_routing(router: Router, text: str) -> None:
    routing = router.route(text)

    assert routing.departments
    if "保育園" in text[:5000] and "ﷺ" not in text:
        assert routing.primary == "childcare"
