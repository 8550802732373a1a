"""Constructions every language has, read by rule and not by listed phrase.

See :mod:`i18n.reply_combine`. Found on new replies that no test had seen
(session 6): wanting to talk read as unclear; "nothing to eat" read as
unclear; colloquial negated fine ("n to bem") read as unclear; "no problem
at all" read as unclear or, in Burmese, as a call for help.

The replies below are worded unlike the keyword lists on purpose (other
conjugations, particles, word orders, romanisations), so they check the
rule and not one phrase. Kept apart from ``test_classifier.py``, which is
already long.
"""

from __future__ import annotations

import pytest

from i18n.classifier import RESIDENT_LANGUAGES, ReplyKind, classify, load_keywords

FINE = ReplyKind.FINE
HELP = ReplyKind.HELP
TALK = ReplyKind.TALK
UNCLEAR = ReplyKind.UNCLEAR


def rows(kind: ReplyKind, table: dict[str, list[str]]) -> list:
    return [
        pytest.param(locale, text, kind, id=f"{locale}: {text} -> {kind.value}")
        for locale, texts in table.items()
        for text in texts
    ]


def check(locale: str, text: str, kind: ReplyKind) -> None:
    result = classify(text, locale)
    assert result.kind is kind, f"{text!r} ({locale}) gave {result}"


# 1. Wanting to talk, in any form, with "someone", or asking to be called.
WANTS_TO_TALK = {
    "ja": ["誰かとお話ししたいです", "少し話せますか", "電話もらえますか"],
    "easy_ja": ["だれか と はなし したい", "でんわ で はなしたい"],
    "en": ["could someone give me a ring", "want to chat with someone", "need to talk to someone"],
    "zh_Hans": ["想找人聊一聊", "能跟我说说话吗", "给我打个电话吧"],
    "zh_Hant": ["想找人聊一聊", "能跟我說說話嗎"],
    "ko": ["누구랑 이야기 좀 하고 싶어요", "통화 가능할까요"],
    "vi": ["tôi cần người nói chuyện", "gọi lại cho tôi nhé"],
    "fil": ["pwede ba tayong mag-usap", "kailangan ko ng makakausap"],
    "ne": ["kasai sanga kura garna man cha", "malai phone garnus na"],
    "pt_BR": ["preciso conversar com alguém", "bora bater um papo"],
    "es": ["necesito hablar con alguien", "alguien me puede llamar"],
    "id": ["pengen ngobrol sama orang", "butuh teman curhat"],
    "my": ["တစ်ယောက်ယောက်နဲ့ စကားပြောလို့ရမလား"],
    "th": ["อยากมีคนคุยด้วย", "ช่วยโทรหาหน่อย"],
    "km": ["ខ្ញុំចង់ជជែកជាមួយអ្នក"],
    "si": ["kawuruhari ekka katha karanna ona", "කතා කරන්න ඕන"],
    "mn": ["хэн нэгэнтэй ярилцаж болох уу"],
    "bn": ["karo sathe kotha bolte chai"],
    "ur": ["kisi se baat karni hai"],
    "hi": ["मुझसे कोई बात करो"],
    "ta": ["yaarodavathu pesalama"],
}

# 2. "No food", "nothing to eat", "X ran out", in each word order.
NOTHING_TO_EAT = {
    "ja": ["食べる物がもうない", "飲み物が切れた"],
    "easy_ja": ["たべもの が もう ない", "のみもの が たりない"],
    "en": ["got nothing to eat", "our food is all gone", "no more drinking water"],
    "zh_Hans": ["家里没吃的了", "米吃完了"],
    "zh_Hant": ["家裡沒吃的了", "米吃完了"],
    "ko": ["먹을 게 하나도 없어요", "쌀이 다 떨어졌어요"],
    "vi": ["nhà hết gạo rồi", "không còn gì để ăn"],
    "fil": ["wala na kaming makain", "ubos na bigas namin"],
    "ne": ["khanekura sakiyo", "chamal chaina"],
    "pt_BR": ["não tem o que comer", "a comida acabou"],
    "es": ["no tenemos nada para comer", "ya no hay agua"],
    "id": ["beras habis", "kehabisan air minum"],
    "my": ["ရေကုန်သွားပြီ", "ဆန်ကုန်ပြီ"],
    "th": ["ไม่มีอะไรจะกิน", "ข้าวหมด"],
    "km": ["អស់អង្ករហើយ"],
    "si": ["wathura iwarai", "බත් නැහැ"],
    "mn": ["хоол алга", "ус дууссан", "ideh yum baihgui"],
    "bn": ["ghore khabar nei", "chal shesh"],
    "ur": ["ghar mein khana nahi", "pani khatam ho gaya"],
    "hi": ["ghar mein khana nahi hai", "rashan khatam ho gaya"],
    "ta": ["veetla saapadu illa", "arisi theernthu pochu"],
}

# 3. A negated fine, colloquial, and negated "is everything ok" phrases.
NEGATED_FINE = {
    "pt_BR": ["não tá tudo bem", "n to bem", "nao to nada bem"],
    "es": ["no estoy bien", "no está todo bien"],
    "fil": ["hindi ako ok", "di ako okay"],
    "id": ["gak baik2 aja", "nggak baik baik aja"],
    "si": ["honda nehe"],
}

# 4. "No problem (at all)", with intensifiers and indefinite words.
NO_PROBLEM = {
    "ja": ["何の問題もございません", "特に問題はないです"],
    "easy_ja": ["なにも もんだい ありません"],
    "en": ["no problems at all", "not a problem"],
    "zh_Hans": ["什么问题都没有", "一点问题也没有"],
    "zh_Hant": ["什麼問題都沒有"],
    "ko": ["아무 문제도 없어요", "전혀 문제없어요"],
    "vi": ["chẳng có vấn đề gì", "khong co van de gi"],
    "fil": ["wala kaming problema"],
    "ne": ["kei pani samasya chaina", "कुनै समस्या छैन"],
    "pt_BR": ["problema nenhum", "sem problema nenhum"],
    "es": ["sin ningún problema", "no hay ningún problema"],
    "id": ["tidak ada masalah sama sekali", "gak ada masalah"],
    "my": ["ဘာပြဿနာမှမရှိဘူး", "ပြဿနာ မရှိပါဘူး"],
    "th": ["ไม่มีปัญหาอะไรเลย"],
    "km": ["គ្មានបញ្ហាអ្វីទេ"],
    "si": ["kisima prashnayak nehe", "aulak nehe"],
    "mn": ["асуудал огт байхгүй", "ямар ч асуудал байхгүй"],
    "bn": ["কোনো সমস্যাই নেই", "kono somossa nei"],
    "ur": ["koi masla nahi hai", "kuch problem nahi hai"],
    "hi": ["koi bhi problem nahi", "कोई दिक्कत नहीं है"],
    "ta": ["ondrum prechanai illai", "எந்த பிரச்சனையும் இல்லை"],
}

# 4b. Other fine variants: honorific, "the whole family is safe".
FINE_VARIANTS = {
    "ja": ["無事でございます", "元気にしております", "家族一同無事です"],
    "en": ["whole family is safe"],
    "zh_Hans": ["我们一家都平安"],
    "zh_Hant": ["我們一家都平安"],
    "vi": ["cả nhà đều bình an"],
    "ne": ["ho thik cha", "sanchai chau hami"],
    "es": ["bien, tranquilos"],
    "ta": ["nalam thaan"],
}

# A reported problem is help; asked about, it is unclear.
PROBLEM_REPORTED = {
    "ja": ["問題があります"],
    "en": ["we have a problem"],
    "zh_Hans": ["出问题了"],
    "ko": ["문제가 있어요"],
    "vi": ["có vấn đề"],
    "pt_BR": ["temos problemas"],
    "id": ["ada masalah besar"],
    "my": ["ပြဿနာရှိတယ်"],
    "th": ["มีปัญหา"],
    "mn": ["асуудал байна"],
    "hi": ["problem hai"],
    "ta": ["பிரச்சனை இருக்கு"],
}

# Never fine: a negated problem that asks, hedges, is past, or is negated again.
NO_PROBLEM_WITH_DOUBT = {
    "ja": ["問題ないですか", "問題ないよね", "問題なかった", "問題ないかな"],
    "easy_ja": ["もんだい ない ですか", "もんだいなかったです"],
    "en": ["no problem?", "no problem right", "there was no problem", "not no problem"],
    "zh_Hans": ["没问题吧", "没问题吗", "什么问题?"],
    "ko": ["문제 없죠?", "문제 없지"],
    "vi": ["không có vấn đề gì chứ", "không có vấn đề gì à"],
    "fil": ["walang problema ba"],
    "ne": ["samasya chaina ra"],
    "pt_BR": ["sem problema?", "sem problema né"],
    "es": ["ningún problema?", "ningún problema verdad"],
    "id": ["gak ada masalah kan", "tidak ada masalah?"],
    "my": ["ပြဿနာမရှိဘူးလား"],
    "th": ["ไม่มีปัญหาใช่ไหม"],
    "km": ["គ្មានបញ្ហាទេឬ"],
    "si": ["prashnayak nehe neda"],
    "mn": ["асуудал байхгүй юу"],
    "bn": ["সমস্যা নেই তো"],
    "ur": ["koi masla nahi kya"],
    "hi": ["kya koi problem nahi", "koi problem nahi kya"],
    "ta": ["பிரச்சனை இல்லையா"],
}


@pytest.mark.parametrize(("locale", "text", "kind"), rows(TALK, WANTS_TO_TALK))
def test_wanting_to_talk_is_talk(locale: str, text: str, kind: ReplyKind) -> None:
    check(locale, text, kind)


@pytest.mark.parametrize(("locale", "text", "kind"), rows(HELP, NOTHING_TO_EAT))
def test_nothing_to_eat_or_drink_is_help(locale: str, text: str, kind: ReplyKind) -> None:
    check(locale, text, kind)


@pytest.mark.parametrize(("locale", "text", "kind"), rows(HELP, NEGATED_FINE))
def test_a_colloquial_negated_fine_is_help(locale: str, text: str, kind: ReplyKind) -> None:
    check(locale, text, kind)


@pytest.mark.parametrize(
    ("locale", "text", "kind"), rows(FINE, NO_PROBLEM) + rows(FINE, FINE_VARIANTS)
)
def test_no_problem_at_all_and_fine_variants_are_fine(
    locale: str, text: str, kind: ReplyKind
) -> None:
    check(locale, text, kind)


@pytest.mark.parametrize(("locale", "text", "kind"), rows(HELP, PROBLEM_REPORTED))
def test_a_reported_problem_is_help(locale: str, text: str, kind: ReplyKind) -> None:
    check(locale, text, kind)


@pytest.mark.parametrize(("locale", "text", "kind"), rows(UNCLEAR, NO_PROBLEM_WITH_DOUBT))
def test_no_problem_with_a_doubt_is_never_fine(locale: str, text: str, kind: ReplyKind) -> None:
    assert classify(text, locale).kind is not FINE, text


def test_a_problem_that_ran_out_is_not_no_problem() -> None:
    """Running out negates a staple ("khana khatam"), not a problem ("problem khatam")."""
    assert classify("problem khatam", "hi").kind is not FINE
    assert classify("hết vấn đề", "vi").kind is not FINE
    assert classify("问题没了", "zh_Hans").kind is not FINE
    assert classify("masalah habis", "id").kind is not FINE


def test_a_need_next_to_no_problem_is_still_help() -> None:
    assert classify("no problem but mother fell", "en").kind is HELP
    assert classify("khana nahi, koi problem nahi", "hi").kind is HELP
    assert classify("sem comida, sem problema", "pt_BR").kind is HELP
    assert classify("ok, no water. please call", "en").kind is HELP


def test_burmese_no_problem_is_not_read_as_pain() -> None:
    """ပြဿနာ (problem) ends in နာ (hurt); the longer word wins."""
    result = classify("ဘာပြဿနာမှမရှိဘူး", "my")
    assert result.kind is FINE, result


@pytest.mark.parametrize("locale", RESIDENT_LANGUAGES)
def test_every_problem_staple_and_modal_word_alone_is_never_fine(locale: str) -> None:
    """These words only mean something together; alone they never close a check-in."""
    keywords = load_keywords()[locale]
    # A negated problem listed whole ("nothing wrong") is fine by design, and
    # a word that is also filler (Nepali "pani": water, and "also") is harmless.
    negators = {*keywords.get("absent"), *keywords.get("negators_before")}
    negators |= set(keywords.get("negators_after"))
    harmless = {*keywords.get("fine"), *keywords.get("filler")}
    for key in ("problem", "staples", "modal", "absent", "depleted"):
        for word in keywords.get(key):
            if word in harmless or (key == "problem" and any(n in word for n in negators)):
                continue
            for text in (word, f"{word}?", f"ok {word}", f"{word} ok"):
                assert classify(text, locale).kind is not FINE, (key, text)


@pytest.mark.parametrize("locale", RESIDENT_LANGUAGES)
def test_every_staple_with_every_absence_word_is_help(locale: str) -> None:
    keywords = load_keywords()[locale]
    every_absence = [*keywords.get("absent"), *keywords.get("depleted")]
    for staple in keywords.get("staples"):
        for absence in [*keywords.get("absent")[:4], *keywords.get("depleted")[:4]]:
            joined = staple + absence
            if any(
                -1 < joined.find(k) < len(staple) < joined.find(k) + len(k) for k in every_absence
            ):
                continue  # "吃" + "完了" is read as "吃完" (finished eating): not a pair
            text = f"{staple} {absence}"
            result = classify(text, locale)
            assert result.kind is HELP, (text, result)


# Thanks for the call: gratitude, not a request, when the reply says it is fine.
THANKS_FOR_THE_CALL = {
    "ja": ["お電話ありがとうございます、元気です"],
    "en": ["thanks for the call, we are fine"],
    "zh_Hans": ["谢谢来电，我们都好"],
    "vi": ["cảm ơn đã gọi, tôi ổn"],
    "fil": ["salamat sa tawag, ok lang kami"],
    "pt_BR": ["obrigado pela ligação, tá tudo certo"],
    "es": ["gracias por llamar, estamos bien"],
    "id": ["makasih udah nelpon, kami baik"],
    "th": ["ขอบคุณที่โทรมา สบายดีครับ"],
}


@pytest.mark.parametrize(("locale", "text", "kind"), rows(FINE, THANKS_FOR_THE_CALL))
def test_thanks_for_the_call_with_fine_is_fine(locale: str, text: str, kind: ReplyKind) -> None:
    check(locale, text, kind)


def test_call_me_with_thanks_but_no_fine_is_still_talk() -> None:
    assert classify("call me thanks", "en").kind is TALK
    assert classify("gracias, llámame", "es").kind is TALK
    assert classify("電話ください ありがとう", "ja").kind is TALK


def test_an_accent_typed_chooses_between_words_that_fold_alike() -> None:
    """Vietnamese "đâu" (where) and "đau" (pain) both fold to "dau"."""
    assert classify("ko có vấn đề gì đâu", "vi").kind is not HELP
    assert classify("đau quá", "vi").kind is HELP
    assert classify("dau qua", "vi").kind is HELP
