"""Japanese sentence and word boundaries (SudachiPy), as the fitter relies on them."""

from __future__ import annotations

import threading

from koho.text import japanese


def test_sentences_end_at_japanese_and_ascii_terminators():
    text = "燃えるごみは月曜日です。資源ごみは水曜日！粗大ごみは予約制ですか？はい!次はいつ?来週です"
    assert japanese.sentences(text) == [
        "燃えるごみは月曜日です。",
        "資源ごみは水曜日！",
        "粗大ごみは予約制ですか？",
        "はい!",
        "次はいつ?",
        "来週です",
    ]


def test_a_run_of_terminators_is_one_ending():
    assert japanese.sentences("本当ですか！？はい。！！すごい") == ["本当ですか！？", "はい。！！", "すごい"]


def test_quotations_are_not_split():
    text = "「明日は休館日です。お気をつけください。」と館長が述べた。次の話題です。"
    assert japanese.sentences(text) == ["「明日は休館日です。お気をつけください。」と館長が述べた。", "次の話題です。"]
    nested = "『子育て相談「毎週火曜。」を開催。』と案内した。以上。"
    assert japanese.sentences(nested) == ["『子育て相談「毎週火曜。」を開催。』と案内した。", "以上。"]


def test_an_unclosed_quote_does_not_swallow_the_text():
    assert japanese.sentences("「閉じない引用です。次の文。") == ["「閉じない引用です。", "次の文。"]


def test_urls_are_not_split_at_their_question_or_exclamation_marks():
    text = "詳細は https://www.city.example.jp/faq?id=1&x=2!3 をご覧ください。次へ"
    assert japanese.sentences(text) == ["詳細は https://www.city.example.jp/faq?id=1&x=2!3 をご覧ください。", "次へ"]


def test_line_breaks_end_sentences_and_spans_are_exact():
    text = "  避難所を開設しました\n\n　小学校の体育館です。ペットも同行できます。 \n"
    spans = japanese.sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["避難所を開設しました", "小学校の体育館です。", "ペットも同行できます。"]
    previous = 0
    for start, end in spans:
        assert text[previous:start].strip() == ""  # only whitespace between sentences
        previous = end
    assert text[previous:].strip() == ""


def test_tokens_are_morphemes_that_rebuild_the_text():
    text = "子育て支援センターは毎週月曜日が休館日です。 観光案内所で地図を配布しています🗾"
    tokens = japanese.tokens(text)
    assert "".join(tokens) == text
    assert {"子育て", "支援", "センター", "月曜日", "観光", "地図"} <= set(tokens)
    spans = japanese.token_spans(text)
    assert all(text[s:e].strip() == text[s:e] for s, e in spans)


def test_long_input_is_tokenized_in_chunks():
    text = "防災訓練を行います。" * 6000  # 60,000 characters, far beyond Sudachi's 49,149-byte input limit
    assert "".join(japanese.tokens(text)) == text
    assert len(japanese.sentences(text)) == 6000


def test_tokenizer_is_created_once_per_process_and_per_thread():
    japanese.tokens("一度目")
    japanese.tokens("二度目")
    assert japanese._dictionary.cache_info().currsize == 1
    assert japanese._tokenizer() is japanese._tokenizer()
    seen = []
    worker = threading.Thread(target=lambda: seen.append((japanese.tokens("別のスレッド"), japanese._tokenizer())))
    worker.start()
    worker.join()
    assert "".join(seen[0][0]) == "別のスレッド"
    assert seen[0][1] is not japanese._tokenizer()  # each thread has its own tokenizer
    assert japanese._dictionary.cache_info().currsize == 1


def test_normalize_is_nfkc():
    assert japanese.normalize("ＫＯＨＯ　ｼﾃｨ①") == "KOHO シティ1"
