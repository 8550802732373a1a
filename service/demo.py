"""`mimamori demo`: a whole morning's welfare check on a fresh database, in well under a minute.

A council's IT volunteer decides in ten minutes whether this is real, so nothing here is a
mock-up. The demo runs the real migrations, the registry service, round fan-out, the outbox
dispatcher (through the console provider, so nothing leaves the machine), the FastAPI app's
signed Twilio webhooks, the deadline sweeps and the escalation engine. Only two things are
simulated:

- **the people**: residents and members answer through signed webhooks, exactly as Twilio
  would post them, each in their own words and language;
- **the clock**: a :class:`~service.clock.FakeClock` moves a morning's minutes in small steps
  while real time passes quickly, and the scheduler's jobs run once per step (what
  ``run_all_once`` does in the simulated-day test).

The simulated morning ends at the real present, so when the dashboard is served afterwards
on the real clock, every deadline and timestamp reads naturally.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import shutil
import socket
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlmodel import Session

from service.texts import N_, cli_language
from service.texts import Text as Message

ORG_NAME = "能登町社会福祉協議会（デモ）"
# What residents read and hear instead of the kanji: the kana reading for Easy Japanese, and
# Latin names, so English, Filipino and Indonesian check-ins stay GSM-7 and one segment.
ORG_NAMES = {
    "easy_ja": "のとちょう しゃかいふくし きょうぎかい（でも）",
    "en": "Noto Town Social Welfare Council (demo)",
    "vi": "Hội đồng Phúc lợi Xã hội thị trấn Noto (demo)",
    "pt_BR": "Conselho de Assistência Social de Noto (demo)",
}
ORG_TIMEZONE = "Asia/Tokyo"
STAFF_EMAIL = "demo-staff@example.jp"
ACCOUNT_SID = "AC" + "0" * 32
OUR_NUMBER = "+815000000000"
# The first welfare check's plan is the default one (SMS, reminder after 60 min, call after
# another 60, escalate 30 min later); after that the members' escalation chains play out.
SIMULATED_MINUTES = 240
STEP_MINUTES = 2
# On a terminal each simulated minute takes at least this long, so people can watch the
# morning happen; without a terminal (tests, pipes) the demo runs as fast as it can.
SECONDS_PER_SIMULATED_MINUTE = 0.06

UNDELIVERABLE_ERROR_CODE = "30003"  # Twilio: unreachable destination handset


# --- The cast -------------------------------------------------------------------------------------

SITES = (
    ("さくら団地（デモ）", "石川県鳳珠郡能登町 さくら地区（架空）"),
    ("うみかぜ団地（デモ）", "石川県鳳珠郡能登町 うみかぜ地区（架空）"),
    ("やまびこ団地（デモ）", "石川県鳳珠郡能登町 やまびこ地区（架空）"),
)
SITE_NAMES = {
    "さくら団地（デモ）": {"easy_ja": "さくらだんち（でも）", "en": "Sakura Housing (demo)"},
    "うみかぜ団地（デモ）": {"easy_ja": "うみかぜだんち（でも）", "en": "Umikaze Housing (demo)"},
    "やまびこ団地（デモ）": {"easy_ja": "やまびこだんち（でも）", "en": "Yamabiko Housing (demo)"},
}
JMA_AREA_NOTO = "390"  # 石川県能登
MUNICIPALITY_NOTO_TOWN = "17463"

# Residents per language: mostly elderly Japanese, and the foreign residents a Noto town
# really has (technical intern trainees, Filipino and Nepalese families, Brazilians, and a
# few from Mongolia and South Asia).
LANGUAGE_QUOTA = {
    "ja": 112,
    "vi": 20,
    "id": 12,
    "fil": 12,
    "zh_Hans": 10,
    "easy_ja": 8,
    "pt_BR": 8,
    "ne": 6,
    "ko": 2,
    "en": 2,
    "bn": 2,
    "hi": 2,
    "mn": 2,
    "ur": 1,
    "ta": 1,
}

JA_SURNAMES = (
    "佐藤 鈴木 高橋 田中 伊藤 渡辺 山本 中村 小林 加藤 吉田 山田 佐々木 山口 松本 井上 木村 "
    "清水 山崎 池田 橋本 阿部 石川 前田 藤田 小川 岡田 後藤 長谷川 村上 近藤 坂本 遠藤 青木 "
    "西村 福田 太田 三浦 藤井 岡本 松田 中川 中野 原田 小野 田村 竹内 金子 和田 中山 石田 上田"
).split()
JA_GIVEN_ELDERLY = (
    "和子 幸子 節子 久子 美代子 文子 トミ ハル 静江 弘子 千代 キヨ 芳子 道子 信子 "
    "茂 清 勇 実 博 進 正雄 和夫 弘 稔 武 昭 三郎 忠 義男 勝"
).split()
JA_GIVEN_YOUNGER = "健一 直樹 大輔 陽子 恵子 洋子 真由美 拓也 美穂 翔太 彩 愛".split()


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(","))


# language: (given names, family names, how a name is written)
FOREIGN_NAMES: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {
    "vi": (
        _names(
            "Văn An, Thị Lan, Minh Tuấn, Thị Mai, Đức Nam, Thu Hà, Văn Hùng, Thị Hạnh, "
            "Quang Dũng, Thị Phương, Văn Bình, Thị Trang"
        ),
        _names("Nguyễn, Trần, Lê, Phạm, Hoàng, Phan, Vũ, Đặng, Bùi, Đỗ"),
        "family given",
    ),
    "id": (
        _names("Agus, Budi, Dewi, Eka, Fitri, Hendra, Indah, Joko, Rizky, Wahyu, Yusuf, Lestari"),
        _names("Pratama, Saputra, Wijaya, Santoso, Hidayat, Nugroho, Setiawan, Kurniawan"),
        "given family",
    ),
    "fil": (
        _names("Maria, Jose, Juan, Ana, Rosa, Mark, Angelica, Jerome, Kristine, Ramon, Liza, Noel"),
        _names("Santos, Reyes, Cruz, Bautista, Ocampo, Garcia, Mendoza, Villanueva, Aquino, Dizon"),
        "given family",
    ),
    "pt_BR": (
        _names("João, Maria, Ana, Carlos, Luiz, Fernanda, Juliana, Rafael, Marcos, Patrícia"),
        _names("Silva, Oliveira, Souza, Pereira, Lima, Nakamura, Yamamoto, Costa"),
        "given family",
    ),
    "zh_Hans": (
        _names("芳, 伟, 秀英, 敏, 静, 丽, 强, 磊, 洋, 艳, 杰, 娟"),
        _names("王, 李, 张, 刘, 陈, 杨, 赵, 黄, 周, 吴"),
        "familygiven",
    ),
    "ne": (
        _names("Ram, Sita, Hari, Gita, Bishnu, Laxmi, Krishna, Sunita, Binod, Sarita"),
        _names("Thapa, Gurung, Shrestha, Tamang, Rai, Magar, Karki, Adhikari"),
        "given family",
    ),
    "ko": (_names("민준, 서연, 지훈, 하은"), _names("김, 이, 박, 최"), "familygiven"),
    "en": (
        _names("Emily, Daniel, Grace, Oliver"),
        _names("Carter, Brooks, Hughes, Reid"),
        "given family",
    ),
    "mn": (
        _names("Bat-Erdene, Oyunchimeg, Ganbaatar, Enkhjargal, Tsetseg, Munkhbat"),
        _names("Tserendorj, Purev, Gantulga, Dorj, Sukhbaatar, Batbold"),
        "family given",
    ),
    "bn": (
        _names("Rahim, Fatema, Sabbir, Nasrin, Arif, Sumaiya"),
        _names("Hossain, Rahman, Islam, Ahmed, Akter, Chowdhury"),
        "given family",
    ),
    "ur": (
        _names("Bilal, Ayesha, Imran, Sana, Usman, Zainab"),
        _names("Khan, Qureshi, Malik, Raza, Butt, Iqbal"),
        "given family",
    ),
    "hi": (
        _names("Rajesh, Priya, Amit, Sunita, Vikram, Anjali"),
        _names("Sharma, Verma, Gupta, Singh, Yadav, Mishra"),
        "given family",
    ),
    "ta": (
        _names("Karthik, Lakshmi, Murugan, Kavitha, Senthil, Divya"),
        _names("Subramanian, Pillai, Krishnan, Selvam, Raman, Kumar"),
        "given family",
    ),
    "easy_ja": (
        _names("Aung Min, Kyaw Zin, Su Su, Nuwan, Dilani, Sokha, Bopha, Thida"),
        _names("Thu, Hlaing, Perera, Silva, Chan, Win, Oo, Fernando"),
        "given family",
    ),
}

# What residents text back, in their own words. Every phrase is checked against the real
# reply classifier by tests/test_demo.py, so the demo's story cannot drift from it.
FINE_WORDS: dict[str, tuple[str, ...]] = {
    "ja": (
        "大丈夫です",
        "元気です",
        "1",
        "はい、元気にしています",
        "おかげさまで無事です",
        "問題ありません",
        "元気です。ありがとう",
    ),
    "easy_ja": ("げんきです", "だいじょうぶです", "1"),
    "vi": ("Tôi ổn", "Em khỏe ạ", "ổn ạ, cảm ơn", "Tôi khỏe, cảm ơn", "1"),
    "id": ("saya baik", "baik-baik saja", "sehat, terima kasih", "1"),
    "fil": ("okay lang ako", "ayos lang po", "mabuti naman po", "1"),
    "pt_BR": ("estou bem", "tudo bem, obrigado", "1"),
    "zh_Hans": ("我很好", "没事，谢谢", "1"),
    "ne": ("ठीक छ", "sanchai chha", "thik chha dhanyabad", "1"),
    "ko": ("괜찮아요", "1"),
    "en": ("I'm fine, thanks", "1"),
    "mn": ("Би зүгээр", "zugeer", "1"),
    "bn": ("ভালো আছি", "valo achi", "1"),
    "ur": ("میں ٹھیک ہوں", "theek hun", "1"),
    "hi": ("मैं ठीक हूँ", "theek hoon", "1"),
    "ta": ("நலமாக இருக்கிறேன்", "nalama irukken", "1"),
}
HELP_WORDS: dict[str, str] = {
    "ja": "大丈夫じゃない",
    "vi": "không ổn",
    "id": "tolong",
    "fil": "tulong po",
    "ne": "मद्दत",
    "pt_BR": "preciso de ajuda",
    "zh_Hans": "我需要帮助",
    "easy_ja": "たすけて",
}
HELP_WORDS_JA_2 = "足が痛くて動けない"
TALK_WORDS: dict[str, str] = {"ja": "話したい", "pt_BR": "quero conversar", "zh_Hans": "想聊聊"}
UNCLEAR_WORDS: dict[str, str] = {
    "ja": "明日は雨かな",
    "vi": "ai vậy?",
    "id": "siapa ini?",
    "zh_Hans": "谁呀？",
    "easy_ja": "わかりません",
}

# Behaviours. "fine" residents answer in the first 45 minutes; "late_fine" after the
# reminder; "silent" never; "undeliverable" is the one number whose messages never arrive.
FINE, LATE_FINE, HELP, TALK = "fine", "late_fine", "help", "talk"
UNCLEAR, UNCLEAR_THEN_FINE, SILENT = "unclear", "unclear_then_fine", "silent"
LANDLINE, LANDLINE_SECOND_CALL = "landline", "landline_second_call"
UNDELIVERABLE, OPTED_OUT, AWAY = "undeliverable", "opted_out", "away"

# Escalation scripts: how the members handle the case of this resident.
DEFAULT, DECLINE_FIRST, IGNORE_FIRST, KEEP_OPEN = "default", "decline_first", "ignore_first", "open"

# (language, behaviour, escalation script, outcome digit, extra resident fields)
SPECIAL_RESIDENTS: tuple[tuple[str, str, str, str, dict[str, Any]], ...] = (
    ("ja", HELP, DEFAULT, "2", {"elderly": True, "lives_alone": True}),
    ("ja", HELP, DEFAULT, "3", {"elderly": True, "disability": True}),
    ("vi", HELP, DEFAULT, "2", {"needs_interpreter": True}),
    ("id", HELP, DEFAULT, "2", {}),
    ("fil", HELP, DEFAULT, "1", {}),
    ("ne", HELP, DEFAULT, "2", {"needs_interpreter": True}),
    ("ja", TALK, DEFAULT, "1", {"elderly": True, "lives_alone": True}),
    ("pt_BR", TALK, DEFAULT, "1", {"needs_interpreter": True}),
    ("zh_Hans", TALK, DEFAULT, "1", {}),
    ("ja", UNCLEAR_THEN_FINE, DEFAULT, "1", {"elderly": True}),
    ("vi", UNCLEAR_THEN_FINE, DEFAULT, "1", {}),
    ("id", UNCLEAR_THEN_FINE, DEFAULT, "1", {}),
    ("zh_Hans", UNCLEAR, DEFAULT, "1", {"needs_interpreter": True}),
    ("ja", UNCLEAR, DEFAULT, "1", {"elderly": True, "lives_alone": True}),
    ("ja", SILENT, DEFAULT, "1", {"elderly": True, "lives_alone": True}),
    ("ja", SILENT, DECLINE_FIRST, "1", {"elderly": True, "lives_alone": True}),
    ("ja", SILENT, IGNORE_FIRST, "1", {"elderly": True}),
    ("ja", SILENT, KEEP_OPEN, "1", {"elderly": True, "lives_alone": True}),
    ("vi", SILENT, DEFAULT, "1", {}),
    ("fil", SILENT, DEFAULT, "2", {}),
    ("pt_BR", SILENT, DEFAULT, "1", {}),
    ("easy_ja", SILENT, DEFAULT, "1", {}),
    ("ja", LANDLINE, DEFAULT, "1", {"elderly": True, "lives_alone": True}),
    ("ja", LANDLINE, DEFAULT, "1", {"elderly": True}),
    ("ja", LANDLINE, DEFAULT, "1", {"elderly": True, "lives_alone": True}),
    ("ja", LANDLINE_SECOND_CALL, DEFAULT, "1", {"elderly": True, "lives_alone": True}),
    ("id", UNDELIVERABLE, DEFAULT, "4", {}),
    ("ja", OPTED_OUT, DEFAULT, "1", {"elderly": True}),
    ("ja", AWAY, DEFAULT, "1", {"elderly": True}),
    *(
        (lang, LATE_FINE, DEFAULT, "1", {})
        for lang in (
            "ja",
            "ja",
            "ja",
            "ja",
            "vi",
            "vi",
            "id",
            "fil",
            "zh_Hans",
            "ne",
        )
    ),
)

# What the summary prints: catalog texts, rendered in the command line's language.
STATE_LABELS = {
    "ok": N_("fine"),
    "needs_help": N_("help"),
    "wants_talk": N_("wants to talk"),
    "no_reply": N_("silent (no reply)"),
    "unreachable": N_("unreachable"),
    "visit_list": N_("visit list (opted out)"),
    "opted_out": N_("opted out during the round"),
    "superseded": N_("away (not contacted)"),
    "waiting": N_("still waiting"),
}
OUTCOME_LABELS = {
    "safe": N_("safe"),
    "needs_support": N_("needs support"),
    "hospitalised": N_("in hospital"),
    "moved": N_("moved"),
    "not_found": N_("not found"),
}


@dataclass
class DemoResident:
    key: str
    name: str
    language: str
    behaviour: str
    script: str
    outcome_digit: str
    site: str
    unit: str
    phone: str | None  # E.164
    flags: dict[str, Any]
    replies: list[tuple[int, str]] = field(default_factory=list)  # (minute, text)
    id: uuid.UUID | None = None


@dataclass
class DemoMember:
    key: str
    name: str
    phone: str
    languages: list[str]
    kind: str
    site: str | None = None
    id: uuid.UUID | None = None


@dataclass
class Cast:
    org_id: uuid.UUID
    email: str
    password: str
    residents: list[DemoResident]
    members: list[DemoMember]

    def resident_by_phone(self) -> dict[str, DemoResident]:
        return {r.phone: r for r in self.residents if r.phone}

    def resident_by_id(self) -> dict[uuid.UUID, DemoResident]:
        return {r.id: r for r in self.residents if r.id}

    def member_by_id(self) -> dict[uuid.UUID, DemoMember]:
        return {m.id: m for m in self.members if m.id}


def _mobile(n: int) -> str:
    return f"+81902000{n:04d}"  # 090-2000-nnnn: a fictional range phonenumbers accepts


def _landline(n: int) -> str:
    return f"+8176800{n:04d}"  # 0768-00-nnnn (能登 area code, fictional exchange)


def _member_phone(n: int) -> str:
    return f"+81803000{n:04d}"  # 080-3000-nnnn


def _person_name(rng: random.Random, language: str, used: set[str], elderly: bool) -> str:
    for _ in range(1000):
        if language == "ja":
            given = rng.choice(JA_GIVEN_ELDERLY if elderly else JA_GIVEN_YOUNGER)
            name = f"{rng.choice(JA_SURNAMES)} {given}"
        else:
            given_names, family_names, order = FOREIGN_NAMES[language]
            given, family = rng.choice(given_names), rng.choice(family_names)
            name = {
                "family given": f"{family} {given}",
                "familygiven": f"{family}{given}",
            }.get(order, f"{given} {family}")
        if name not in used:
            used.add(name)
            return name
    raise RuntimeError("ran out of demo names")  # pragma: no cover


def plan_cast(rng: random.Random) -> tuple[list[DemoResident], list[DemoMember]]:
    """Who lives where, speaks what, and will behave how: decided before any row is written,
    from the seed alone, so `--seed` replays the same morning."""
    used: set[str] = set()
    members: list[DemoMember] = []
    n = 0
    for site_name, _address in SITES:
        for _ in range(4):
            n += 1
            members.append(
                DemoMember(
                    f"M{n:02d}",
                    _person_name(rng, "ja", used, True),
                    _member_phone(n),
                    ["ja"],
                    "welfare_committee",
                    site_name,
                )
            )
    for key, language, kind in (
        ("SV-vi", "vi", "supporter"),
        ("SV-id", "id", "supporter"),
        ("SV-fil", "fil", "supporter"),
        ("IP-pt", "pt_BR", "interpreter"),
        ("IP-zh", "zh_Hans", "interpreter"),
        ("IP-ne", "ne", "interpreter"),
    ):
        n += 1
        members.append(
            DemoMember(
                key,
                _person_name(rng, language, used, False),
                _member_phone(n),
                [language, "ja"],
                kind,
            )
        )
    for key in ("ST-1", "ST-2"):
        n += 1
        name = _person_name(rng, "ja", used, False) + "（社協）"
        members.append(DemoMember(key, name, _member_phone(n), ["ja"], "staff_on_duty"))

    specials = list(SPECIAL_RESIDENTS)
    quota = dict(LANGUAGE_QUOTA)
    rows: list[tuple[str, str, str, str, dict[str, Any]]] = []
    for language, behaviour, script, digit, extra in specials:
        quota[language] -= 1
        rows.append((language, behaviour, script, digit, dict(extra)))
    for language, remaining in quota.items():
        for _ in range(remaining):
            rows.append((language, FINE, DEFAULT, "1", {}))
    rng.shuffle(rows)

    residents: list[DemoResident] = []
    units: Counter[str] = Counter()
    landline_n = 0
    for index, (language, behaviour, script, digit, extra) in enumerate(rows, start=1):
        site_name = SITES[index % len(SITES)][0]
        units[site_name] += 1
        block, room = divmod(units[site_name] - 1, 12)
        unit = f"{block + 1}-{101 + room}"
        flags = dict(extra)
        if language == "ja" and "elderly" not in flags:
            flags["elderly"] = rng.random() < 0.7
        if flags.get("elderly") and "lives_alone" not in flags:
            flags["lives_alone"] = rng.random() < 0.45
        if language not in ("ja", "easy_ja") and "needs_interpreter" not in flags:
            flags["needs_interpreter"] = rng.random() < 0.25
        if language == "ja" and "disability" not in flags:
            flags["disability"] = rng.random() < 0.06
        phone: str | None = _mobile(index)
        if behaviour in (LANDLINE, LANDLINE_SECOND_CALL):
            landline_n += 1
            phone = _landline(1000 + landline_n)
        resident = DemoResident(
            key=f"NT-{index:04d}",
            name=_person_name(rng, language, used, bool(flags.get("elderly"))),
            language=language,
            behaviour=behaviour,
            script=script,
            outcome_digit=digit,
            site=site_name,
            unit=unit,
            phone=phone,
            flags=flags,
        )
        resident.replies = _replies(rng, resident)
        residents.append(resident)
    return residents, members


def _replies(rng: random.Random, resident: DemoResident) -> list[tuple[int, str]]:
    language, behaviour = resident.language, resident.behaviour
    fine = rng.choice(FINE_WORDS[language])
    if behaviour == FINE:
        return [(rng.randint(1, 45), fine)]
    if behaviour == LATE_FINE:
        return [(rng.randint(62, 100), fine)]
    if behaviour == HELP:
        words = HELP_WORDS[language]
        if language == "ja" and resident.flags.get("disability"):
            words = HELP_WORDS_JA_2
        return [(rng.randint(2, 15), words)]
    if behaviour == TALK:
        return [(rng.randint(3, 30), TALK_WORDS[language])]
    if behaviour == UNCLEAR:
        return [(rng.randint(3, 20), UNCLEAR_WORDS[language])]
    if behaviour == UNCLEAR_THEN_FINE:
        first = rng.randint(3, 20)
        return [(first, UNCLEAR_WORDS[language]), (first + rng.randint(6, 12), "1")]
    return []


# --- Seeding --------------------------------------------------------------------------------------


def seed(engine: Engine, rng: random.Random, now: datetime) -> Cast:
    """Write the organization, sites, staff user, members, residents and assignments through
    the registry service, audited like any other change."""
    from service.audit.service import Actor
    from service.auth.models import Role, UserCreate
    from service.auth.service import create_user, get_or_create_organization
    from service.registry import service as registry
    from service.registry.models import (
        MemberCreate,
        MemberKind,
        OrganizationUpdate,
        ResidentCreate,
        ResidentStatus,
        SiteCreate,
    )

    actor = Actor(label="demo")
    residents, members = plan_cast(rng)
    password = secrets.token_urlsafe(12)
    local_today = now.astimezone(ZoneInfo(ORG_TIMEZONE)).date()
    consent = now - timedelta(days=40)
    with Session(engine) as session:
        org = get_or_create_organization(session=session, name=ORG_NAME, timezone=ORG_TIMEZONE)
        registry.update_organization(
            session=session,
            organization_id=org.id,
            data=OrganizationUpdate(names=ORG_NAMES),
            actor=actor,
        )
        create_user(
            session=session,
            organization_id=org.id,
            data=UserCreate(
                email=STAFF_EMAIL,
                full_name="見守り 花子（デモ職員）",
                role=Role.admin,
                password=password,
            ),
            actor=actor,
        )
        site_ids: dict[str, uuid.UUID] = {}
        for name, address in SITES:
            site = registry.create_site(
                session=session,
                organization_id=org.id,
                data=SiteCreate(
                    name=name,
                    address=address,
                    municipality_code=MUNICIPALITY_NOTO_TOWN,
                    jma_area_code=JMA_AREA_NOTO,
                    names=SITE_NAMES.get(name),
                ),
                actor=actor,
            )
            site_ids[name] = site.id
        for member in members:
            created = registry.create_member(
                session=session,
                organization_id=org.id,
                data=MemberCreate(
                    external_id=member.key,
                    name=member.name,
                    phone=member.phone,
                    languages=member.languages,
                    kind=MemberKind(member.kind),
                ),
                actor=actor,
            )
            member.id = created.id
        for resident in residents:
            status = ResidentStatus.active
            away_until: date | None = None
            if resident.behaviour == OPTED_OUT:
                status = ResidentStatus.opted_out
            elif resident.behaviour == AWAY:
                status, away_until = ResidentStatus.away, local_today + timedelta(days=6)
            created = registry.create_resident(
                session=session,
                organization_id=org.id,
                data=ResidentCreate(
                    external_id=resident.key,
                    name=resident.name,
                    phone=resident.phone,
                    language=resident.language,
                    site_id=site_ids[resident.site],
                    unit=resident.unit,
                    household="単身" if resident.flags.get("lives_alone") else None,
                    consent_at=consent,
                    consent_method="書面（デモ）",
                    status=status,
                    away_until=away_until,
                    notes="入院中（デモ）" if resident.behaviour == AWAY else None,
                    **resident.flags,
                ),
                actor=actor,
            )
            resident.id = created.id
        _assign(session, org.id, residents, members, actor)
        session.commit()
        org_id = org.id
    return Cast(org_id, STAFF_EMAIL, password, residents, members)


def _assign(
    session: Session,
    org_id: uuid.UUID,
    residents: list[DemoResident],
    members: list[DemoMember],
    actor: Any,
) -> None:
    """Each resident has the site's welfare committee members at ranks 1 and 2; foreign
    residents whose language a supporter speaks have that supporter first."""
    from service.registry import service as registry
    from service.registry.models import AssignmentCreate

    committee: dict[str, list[DemoMember]] = defaultdict(list)
    for member in members:
        if member.kind == "welfare_committee" and member.site:
            committee[member.site].append(member)
    supporters = {m.languages[0]: m for m in members if m.kind == "supporter"}
    per_site: Counter[str] = Counter()
    for resident in residents:
        local = committee[resident.site]
        i = per_site[resident.site]
        per_site[resident.site] += 1
        chain = [local[i % len(local)], local[(i + 1) % len(local)]]
        if resident.language in supporters:
            chain = [supporters[resident.language], chain[0]]
        for rank, member in enumerate(chain, start=1):
            registry.create_assignment(
                session=session,
                organization_id=org_id,
                data=AssignmentCreate(resident_id=resident.id, member_id=member.id, rank=rank),
                actor=actor,
            )


# --- The morning ----------------------------------------------------------------------------------


@dataclass
class Progress:
    minute: int = 0
    sent: int = 0
    delivered: int = 0
    failed: int = 0
    replied: int = 0
    escalated: int = 0
    resolved: int = 0
    alerts: int = 0
    settled: int = 0
    total: int = 0
    clock: str = ""


class Director:
    """Plays the residents, the members and Twilio around the real system."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Any,
        ctx: Any,
        provider: Any,
        client: Any,
        cast: Cast,
        rng: random.Random,
        start: datetime,
    ) -> None:
        from service.config import get_settings

        self.engine = engine
        self.clock = clock
        self.ctx = ctx
        self.provider = provider
        self.client = client
        self.cast = cast
        self.rng = rng
        self.start = start
        self.settings = get_settings()
        self.by_phone = cast.resident_by_phone()
        self.by_id = cast.resident_by_id()
        self.members = cast.member_by_id()
        self.round_id: uuid.UUID | None = None
        self._records_seen = 0
        self._calls: Counter[str] = Counter()
        self._decisions: dict[Any, tuple[str, int]] = {}
        self._done: set[Any] = set()
        self.webhooks = 0

    # -- Twilio's side ----------------------------------------------------------------------------

    async def post(self, url_or_path: str, params: dict[str, str]) -> str:
        """Post a webhook signed exactly as Twilio signs it: the public URL plus the form."""
        from service.telephony.signature import sign

        public = self.settings.public_url
        path = url_or_path[len(public) :] if url_or_path.startswith(public) else url_or_path
        token = self.settings.webhook_auth_tokens()[0]
        signature = sign(public + path, params, token)
        response = await self.client.post(
            path, data=params, headers={"X-Twilio-Signature": signature}
        )
        self.webhooks += 1
        if response.status_code >= 400:
            raise RuntimeError(f"webhook {path.split('?')[0]} answered {response.status_code}")
        return response.text

    async def sms(self, from_phone: str, body: str) -> str:
        return await self.post(
            "/twilio/sms",
            {
                "MessageSid": f"SM{uuid.uuid4().hex}",
                "AccountSid": ACCOUNT_SID,
                "From": from_phone,
                "To": OUR_NUMBER,
                "Body": body,
                "NumMedia": "0",
            },
        )

    async def _callbacks(self) -> None:
        """What Twilio posts after our sends: delivery receipts, and the calls' webhooks."""
        records = self.provider.sent
        new, self._records_seen = records[self._records_seen :], len(records)
        for record in new:
            resident = self.by_phone.get(record.to)
            if record.kind == "sms":
                params = {
                    "MessageSid": record.sid,
                    "AccountSid": ACCOUNT_SID,
                    "To": record.to,
                    "From": OUR_NUMBER,
                }
                if resident is not None and resident.behaviour == UNDELIVERABLE:
                    await self.post(
                        record.status_callback,
                        {
                            **params,
                            "MessageStatus": "undelivered",
                            "ErrorCode": UNDELIVERABLE_ERROR_CODE,
                        },
                    )
                else:
                    await self.post(
                        record.status_callback, {**params, "MessageStatus": "delivered"}
                    )
                continue
            self._calls[record.to] += 1
            base = {
                "CallSid": record.sid,
                "AccountSid": ACCOUNT_SID,
                "To": record.to,
                "From": OUR_NUMBER,
                "Direction": "outbound-api",
            }
            answers = resident is not None and (
                resident.behaviour == LANDLINE
                or (resident.behaviour == LANDLINE_SECOND_CALL and self._calls[record.to] >= 2)
            )
            if not answers:
                await self.post(record.status_callback, {**base, "CallStatus": "no-answer"})
                continue
            assert record.twiml_url is not None
            await self.post(
                record.twiml_url, {**base, "CallStatus": "in-progress", "AnsweredBy": "human"}
            )
            gather = record.twiml_url.replace("/twilio/voice?", "/twilio/voice/gather?", 1)
            await self.post(gather, {**base, "CallStatus": "in-progress", "Digits": "1"})
            await self.post(record.status_callback, {**base, "CallStatus": "completed"})

    # -- the residents ----------------------------------------------------------------------------

    async def _resident_replies(self, after: int, upto: int) -> None:
        for resident in self.cast.residents:
            for minute, text in resident.replies:
                if after < minute <= upto and resident.phone:
                    await self.sms(resident.phone, text)

    # -- the members ------------------------------------------------------------------------------

    def _decide(self, key: Any, options: Callable[[], tuple[str, int]]) -> tuple[str, int]:
        if key not in self._decisions:
            self._decisions[key] = options()
        return self._decisions[key]

    async def _member_answers(self, now: datetime) -> None:
        from service.common import aware
        from service.escalations.models import Alert, AlertState, Escalation, EscalationState
        from service.telephony.models import OutboxMessage, OutboxStatus

        with Session(self.engine) as session:
            # Alerts the members have received (the dispatcher sent them) and not answered.
            pending = session.execute(
                select(
                    Alert.id,
                    Alert.member_id,
                    Alert.step_index,
                    Alert.sent_at,
                    Escalation.chain,
                    Escalation.case_code,
                    Escalation.resident_id,
                )
                .join(Escalation, Escalation.id == Alert.escalation_id)
                .join(OutboxMessage, OutboxMessage.alert_id == Alert.id)
                .where(
                    Alert.state == AlertState.sent,
                    Escalation.state == EscalationState.alerting,
                    OutboxMessage.status.in_([OutboxStatus.sent, OutboxStatus.delivered]),  # type: ignore[attr-defined]
                )
                .order_by(Alert.sent_at)
            ).all()
            held = session.execute(
                select(
                    Escalation.id,
                    Escalation.resident_id,
                    Escalation.acknowledged_by,
                    Escalation.acknowledged_at,
                    Escalation.case_code,
                ).where(Escalation.state == EscalationState.acknowledged)
            ).all()
        for alert_id, member_id, step, sent_at, chain, code, resident_id in pending:
            resident = self.by_id.get(resident_id)
            member = self.members.get(member_id)
            if resident is None or member is None or alert_id in self._done:
                continue
            if str(member_id) != chain[step][0]["member_id"]:
                continue  # an interpreter alerted alongside the member: the member answers
            if resident.script == IGNORE_FIRST and step == 0:
                continue  # this member never answers; the step times out and moves on
            if resident.script == DECLINE_FIRST and step == 0:
                action, delay = self._decide(alert_id, lambda: ("2", self.rng.randint(2, 4)))
            else:
                action, delay = self._decide(alert_id, lambda: ("1", self.rng.randint(3, 8)))
            if now - aware(sent_at) >= timedelta(minutes=delay):  # type: ignore[operator]
                self._done.add(alert_id)
                await self.sms(member.phone, f"{action} {code}")
        for escalation_id, resident_id, holder, acknowledged_at, code in held:
            resident = self.by_id.get(resident_id)
            member = self.members.get(holder)
            key = (escalation_id, "outcome")
            if resident is None or member is None or key in self._done:
                continue
            if resident.script == KEEP_OPEN:
                continue  # still on the visit when the morning ends
            _, visit = self._decide(key, lambda: ("visit", self.rng.randint(25, 50)))
            if now - aware(acknowledged_at) >= timedelta(minutes=visit):  # type: ignore[operator]
                self._done.add(key)
                await self.sms(member.phone, f"{code} {resident.outcome_digit}")

    # -- the morning ------------------------------------------------------------------------------

    async def start_round(self) -> uuid.UUID:
        from service.checkins import flows

        self.round_id = flows.start_broadcast(
            self.engine,
            organization_id=self.cast.org_id,
            started_by="demo",
            now_fn=self.clock.now,
            # The morning ends at the real present, whatever the hour; a real council
            # would start this round at 10:00, outside quiet hours.
            override_quiet_hours=True,
        )
        await self._tick()
        return self.round_id

    async def _tick(self) -> None:
        from scheduler.jobs import run_all_once

        # Blocking on purpose: the scheduler's jobs run to completion between steps, as a
        # tick of the simulated-day test does (dispatch runs on the context's own loop).
        run_all_once(self.ctx)
        await self._callbacks()

    async def advance(self, minutes: int) -> None:
        before = self.minute
        self.clock.set(self.start + timedelta(minutes=before + minutes))
        now = self.clock.now()
        await self._resident_replies(before, before + minutes)
        await self._member_answers(now)
        await self._tick()

    @property
    def minute(self) -> int:
        return int((self.clock.now() - self.start).total_seconds() // 60)

    def progress(self) -> Progress:
        from service.checkins.models import CheckIn, CheckInState
        from service.escalations.models import Escalation, EscalationState
        from service.telephony.models import InboundMessage, OutboxMessage, OutboxPurpose

        with Session(self.engine) as session:
            by_status = dict(
                session.execute(
                    select(OutboxMessage.status, func.count())
                    .where(OutboxMessage.purpose == OutboxPurpose.checkin)
                    .group_by(OutboxMessage.status)
                ).all()
            )
            escalations = dict(
                session.execute(
                    select(Escalation.state, func.count()).group_by(Escalation.state)
                ).all()
            )
            checkins = dict(
                session.execute(
                    select(CheckIn.state, func.count())
                    .where(CheckIn.round_id == self.round_id)
                    .group_by(CheckIn.state)
                ).all()
            )
            replied = session.execute(
                select(func.count())
                .select_from(InboundMessage)
                .where(InboundMessage.resident_id.is_not(None))  # type: ignore[union-attr]
            ).scalar_one()
            alerts = session.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(
                    OutboxMessage.purpose == OutboxPurpose.alert,
                    OutboxMessage.sid.is_not(None),  # type: ignore[union-attr]
                )
            ).scalar_one()
        delivered = by_status.get("delivered", 0) + by_status.get("answered", 0)
        failed = sum(
            by_status.get(s, 0) for s in ("failed", "undelivered", "no_answer", "busy", "machine")
        )
        sent = sum(v for k, v in by_status.items() if k not in ("pending", "sending"))
        total = sum(checkins.values())
        local = self.clock.now().astimezone(ZoneInfo(ORG_TIMEZONE))
        return Progress(
            minute=self.minute,
            sent=sent,
            delivered=delivered,
            failed=failed,
            replied=replied,
            escalated=sum(escalations.values()),
            resolved=escalations.get(EscalationState.resolved.value, 0),
            alerts=alerts,
            settled=total - checkins.get(CheckInState.waiting.value, 0),
            total=total,
            clock=local.strftime("%H:%M %Z"),
        )


PROGRESS_HEADINGS = (
    N_("sent"),
    N_("delivered"),
    N_("replied"),
    N_("escalated"),
    N_("resolved"),
    N_("member alerts"),
)


def render_progress(p: Progress, language: str = "en") -> Group:
    """The live display, in ``language``; the clock is the organization's local time."""
    grid = Table.grid(padding=(0, 2))
    for _ in range(6):
        grid.add_column(justify="right")
    grid.add_row(*(Text(h.render(language), style="bold") for h in PROGRESS_HEADINGS))
    failed = N_("%(delivered)s (%(failed)s failed)", delivered=p.delivered, failed=p.failed)
    grid.add_row(
        str(p.sent),
        failed.render(language),
        str(p.replied),
        str(p.escalated),
        str(p.resolved),
        str(p.alerts),
    )
    header = Text.assemble(
        (N_("Simulated morning").render(language) + " ", "bold"),
        (p.clock, "cyan"),
        "  "
        + N_("(minute %(minute)s of %(total)s)", minute=p.minute, total=SIMULATED_MINUTES).render(
            language
        ),
    )
    settled = Text(
        N_("check-ins settled %(settled)s/%(total)s", settled=p.settled, total=p.total).render(
            language
        )
    )
    bar = ProgressBar(total=max(p.total, 1), completed=p.settled, width=40)
    return Group(header, grid, Text.assemble(settled, " "), bar)


# --- The summary ----------------------------------------------------------------------------------


@dataclass
class Summary:
    states: dict[str, int]
    unclear: int
    keypad: int
    undelivered_numbers: int
    by_language: dict[str, Counter[str]]
    # code, resident, where, language (a code), state; story and who: lists of texts.
    stories: list[dict[str, Any]]


def summarize(engine: Engine, round_id: uuid.UUID) -> Summary:
    from service.checkins.models import CheckIn
    from service.escalations.models import Alert, Escalation
    from service.registry.models import Member, Resident, Site
    from service.telephony.models import InboundMessage, OutboxMessage

    with Session(engine) as session:
        rows = session.execute(
            select(CheckIn.state, CheckIn.flagged, Resident.language)
            .join(Resident, Resident.id == CheckIn.resident_id)
            .where(CheckIn.round_id == round_id)
        ).all()
        states: Counter[str] = Counter()
        by_language: dict[str, Counter[str]] = defaultdict(Counter)
        unclear = 0
        for state, flagged, language in rows:
            states[str(state)] += 1
            by_language[language]["residents"] += 1
            by_language[language][str(state)] += 1
            if flagged:
                unclear += 1
                by_language[language]["unclear"] += 1
        keypad = session.execute(
            select(func.count())
            .select_from(InboundMessage)
            .where(InboundMessage.channel == "keypad")
        ).scalar_one()
        undelivered_numbers = session.execute(
            select(func.count(func.distinct(OutboxMessage.to_phone))).where(
                OutboxMessage.status == "undelivered"
            )
        ).scalar_one()
        flagged_checkins = {
            row[0]
            for row in session.execute(select(CheckIn.id).where(CheckIn.flagged.is_(True)))  # type: ignore[attr-defined]
        }
        members = {m.id: m.name for m in session.execute(select(Member)).scalars()}
        sites = {s.id: s.name for s in session.execute(select(Site)).scalars()}
        stories = []
        for escalation in session.execute(
            select(Escalation).order_by(Escalation.priority, Escalation.created_at)
        ).scalars():
            resident = session.get(Resident, escalation.resident_id)
            assert resident is not None
            alerts = list(
                session.execute(select(Alert).where(Alert.escalation_id == escalation.id)).scalars()
            )
            path, who = escalation_story(
                escalation, alerts, escalation.checkin_id in flagged_checkins, members
            )
            stories.append(
                {
                    "code": escalation.case_code,
                    "resident": resident.name,
                    "where": f"{sites.get(resident.site_id, '')} {resident.unit or ''}".strip(),  # type: ignore[arg-type]
                    "language": resident.language,
                    "story": path,
                    "who": who,
                    "state": str(escalation.state),
                }
            )
    return Summary(dict(states), unclear, keypad, undelivered_numbers, dict(by_language), stories)


def escalation_story(
    escalation: Any, alerts: list[Any], unclear: bool, members: dict[uuid.UUID, str]
) -> tuple[list[Message], list[Message]]:
    """What an escalation did, step by step (printed joined by arrows:
    silent→escalated→declined→next member→…), and who did it."""
    reasons = {
        "no_reply": N_("unclear→silent") if unclear else N_("silent"),
        "unreachable": N_("unreachable"),
        "needs_help": N_("help"),
        "visit_list": N_("visit list"),
    }
    reason = str(escalation.reason)
    parts = [reasons.get(reason, Message("%(reason)s", {"reason": reason})), N_("escalated")]
    who: list[Message] = []
    steps: dict[int, list[Any]] = defaultdict(list)
    for alert in alerts:
        steps[alert.step_index].append(alert)
    ordered = sorted(steps)
    for step in ordered:
        states = [str(a.state) for a in steps[step]]
        last = step == ordered[-1]
        if "acknowledged" in states:
            holder = next(a for a in steps[step] if str(a.state) == "acknowledged")
            parts.append(N_("acknowledged"))
            who.append(N_("acknowledged by %(name)s", name=members.get(holder.member_id, "?")))
            if not last:
                parts.append(N_("no outcome→next member"))
        elif "sent" in states:
            parts.append(N_("alerted (waiting for an answer)"))
        elif all(s == "declined" for s in states):
            parts.append(N_("declined→next member") if not last else N_("declined"))
            names = ", ".join(members.get(a.member_id, "?") for a in steps[step])
            who.append(N_("declined by %(names)s", names=names))
        elif all(s == "withdrawn" for s in states):
            continue
        else:
            parts.append(N_("no answer→next member") if not last else N_("no answer"))
            names = ", ".join(members.get(a.member_id, "?") for a in steps[step])
            who.append(N_("no answer from %(names)s", names=names))
    state = str(escalation.state)
    if state == "resolved":
        outcome = str(escalation.outcome)
        label = OUTCOME_LABELS.get(outcome, Message("%(outcome)s", {"outcome": outcome}))
        parts.append(N_("resolved (%(outcome)s)", outcome=label))
    elif state == "exhausted":
        parts.append(N_("chain exhausted→on staff's list"))
    elif state == "acknowledged":
        parts[-1] = N_("%(step)s (visit in progress)", step=parts[-1])
    return parts, who


LANGUAGE_HEADINGS = (
    N_("people"),
    N_("fine"),
    N_("help"),
    N_("talk"),
    N_("unclear"),
    N_("silent"),
    N_("unreach"),
)


def print_summary(
    out: Console, summary: Summary, elapsed: float, webhooks: int, language: str = "en"
) -> None:
    """The simulated morning's summary, in ``language``; names, codes and counts as they are."""
    from i18n.languages import get_language

    def _(message: Message) -> str:
        return message.render(language)

    states = Table(title=_(N_("Check-ins by state")), box=box.SIMPLE_HEAD)
    states.add_column(_(N_("state")))
    states.add_column(_(N_("residents")), justify="right")
    order = [
        "ok",
        "needs_help",
        "wants_talk",
        "no_reply",
        "unreachable",
        "visit_list",
        "opted_out",
        "superseded",
        "waiting",
    ]
    for state in order:
        count = summary.states.get(state, 0)
        if count or state in ("ok", "needs_help", "no_reply", "unreachable"):
            states.add_row(_(STATE_LABELS[state]), str(count))
    states.add_row(_(N_("unclear (asked again, flagged for staff)")), str(summary.unclear))
    states.add_row(_(N_("total")), str(sum(summary.states.values())), style="bold")
    out.print(states)

    languages = Table(title=_(N_("Check-ins by language")), box=box.SIMPLE_HEAD, padding=(0, 1))
    languages.add_column(_(N_("language")), no_wrap=True, overflow="ellipsis", max_width=16)
    for heading in (_(h) for h in LANGUAGE_HEADINGS):
        width = sum(2 if ord(c) > 0x2E80 else 1 for c in heading)
        languages.add_column(heading, justify="right", no_wrap=True, min_width=width)
    for code, counts in sorted(summary.by_language.items(), key=lambda kv: -kv[1]["residents"]):
        known = get_language(code)
        name = f"{code} {known.native_name}" if known else code
        languages.add_row(
            name,
            *(
                str(counts[key])
                for key in (
                    "residents",
                    "ok",
                    "needs_help",
                    "wants_talk",
                    "unclear",
                    "no_reply",
                    "unreachable",
                )
            ),
        )
    out.print(languages)

    heading = N_("What each escalation did (%(count)s escalations)", count=len(summary.stories))
    out.print(_(heading), style="bold", markup=False, highlight=False)
    for story in summary.stories:
        known = get_language(story["language"])
        spoken = story["language"]
        if known is not None:
            spoken = known.japanese_name if language == "ja" else known.english_name
        path = "→".join(_(step) for step in story["story"])
        line = f"  {story['code']:<4} {story['resident']} ({story['where']}, {spoken}): {path}"
        if story["who"]:
            line += "  [" + "; ".join(_(who) for who in story["who"]) + "]"
        out.print(line, soft_wrap=True, markup=False, highlight=False)
    out.print()
    counts = N_(
        "%(keypad)s residents answered a call by keypad; %(failed)s number(s) failed delivery "
        "(Twilio error %(code)s); %(webhooks)s signed webhooks were posted.",
        keypad=summary.keypad,
        failed=summary.undelivered_numbers,
        code=UNDELIVERABLE_ERROR_CODE,
        webhooks=webhooks,
    )
    out.print(_(counts), markup=False, highlight=False)
    seconds = f"{elapsed:.1f}"
    done = N_(
        "The demo round completed in %(seconds)s s (%(minutes)s simulated minutes).",
        seconds=seconds,
        minutes=SIMULATED_MINUTES,
    )
    out.print(_(done), style="bold green", markup=False, highlight=False)


# --- Running it -----------------------------------------------------------------------------------


@dataclass
class DemoOptions:
    database: Path | None = None
    serve: bool = True
    port: int = 8000
    seed: int = 2024
    host: str = "127.0.0.1"


class DemoError(Exception):
    """Something the person running the demo can fix (a used port, an existing file),
    said as a catalog text (``text``); ``str()`` is the English one."""

    def __init__(self, text: Message) -> None:
        self.text = text
        super().__init__(str(text))


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _configure_environment(url: str, port: int) -> None:
    """The demo is its own world: its database, a local public URL, and never Twilio,
    whatever the shell or a `.env` file says (environment variables win over `.env`)."""
    from service.config import get_settings
    from service.db import get_engine

    os.environ["MIMAMORI_DATABASE_URL"] = url
    os.environ["MIMAMORI_PUBLIC_URL"] = f"http://localhost:{port}"
    os.environ["MIMAMORI_TWILIO_ACCOUNT_SID"] = ""
    os.environ["MIMAMORI_TWILIO_AUTH_TOKEN"] = ""
    os.environ["MIMAMORI_JMA_POLL_ENABLED"] = "false"
    os.environ["MIMAMORI_ENVIRONMENT"] = "development"
    get_settings.cache_clear()
    get_engine.cache_clear()


def run_demo(options: DemoOptions, *, out: Console, err: Console) -> int:
    """Seed, play the morning, print the summary, then serve (or exit). Returns the exit
    code."""
    started = time.monotonic()
    temporary: Path | None = None
    if options.database is not None:
        path = options.database.expanduser().resolve()
        if path.exists():
            raise DemoError(
                N_("%(path)s already exists: the demo needs a fresh database file.", path=path)
            )
        path.parent.mkdir(parents=True, exist_ok=True)
    else:
        temporary = Path(tempfile.mkdtemp(prefix="mimamori-demo-"))
        path = temporary / "demo.db"
    if options.serve and not _port_free(options.host, options.port):
        raise DemoError(
            N_(
                "port %(port)s is in use: choose another with %(option)s.",
                port=options.port,
                option="--port",
            )
        )
    try:
        return _run(options, path, temporary is not None, started, out, err)
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _run(
    options: DemoOptions, path: Path, temporary: bool, started: float, out: Console, err: Console
) -> int:
    import logging

    from scheduler.jobs import JobContext
    from service import migrate
    from service.clock import FakeClock, SystemClock, set_clock
    from service.common import utcnow
    from service.config import get_settings
    from service.db import get_engine
    from service.logging_setup import configure_logging
    from service.telephony.console import ConsoleProvider

    url = f"sqlite:///{path.as_posix()}"
    _configure_environment(url, options.port)
    # The live display owns the terminal during the round; only problems are logged.
    configure_logging("WARNING", json_logs=True)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    settings = get_settings()
    migrate.upgrade(url)
    engine = get_engine()

    rng = random.Random(options.seed)
    random.seed(options.seed)  # case codes come from the module-level generator
    real_now = utcnow().replace(second=0, microsecond=0)
    start = real_now - timedelta(minutes=SIMULATED_MINUTES)
    cast = seed(engine, rng, start)
    dashboard = f"http://localhost:{options.port}"

    language = cli_language()
    print_header(out, cast, path, temporary, dashboard if options.serve else None, language)

    clock = FakeClock(start)
    set_clock(clock)
    provider = ConsoleProvider()
    ctx = JobContext(engine=engine, clock=clock, settings=settings, provider=provider)
    pace = SECONDS_PER_SIMULATED_MINUTE * STEP_MINUTES if err.is_terminal else 0.0
    try:
        round_id, webhooks = asyncio.run(
            _play(engine, clock, ctx, provider, cast, rng, start, pace, err, language)
        )
    finally:
        ctx.close()
        set_clock(SystemClock())

    summary = summarize(engine, round_id)
    print_summary(out, summary, time.monotonic() - started, webhooks, language)

    if not options.serve:
        if temporary:
            done = N_(
                "The temporary database is removed; keep one with %(option)s.",
                option="--database PATH",
            )
        else:
            command = f"MIMAMORI_DATABASE_URL={url} mimamori serve"
            done = N_(
                "Serve it again with: %(command)s (without Twilio settings: the demo's phone "
                "numbers are fictional).",
                command=command,
            )
        out.print(done.render(language), markup=False, highlight=False, soft_wrap=True)
        return 0
    return _serve(options, cast, dashboard, out, language)


def print_header(
    out: Console,
    cast: Cast,
    path: Path,
    temporary: bool,
    dashboard: str | None,
    language: str,
) -> None:
    """What the demo is, where it lives and how to log in, in ``language``."""
    languages = Counter(r.language for r in cast.residents)
    lines = [
        N_("Mimamori demo: %(org)s", org=ORG_NAME),
        N_(
            "  %(sites)s temporary housing sites in %(area)s (JMA area %(code)s), %(residents)s "
            "residents in %(languages)s languages, %(members)s welfare committee members and "
            "supporters.",
            sites=len(SITES),
            area="石川県能登",
            code=JMA_AREA_NOTO,
            residents=len(cast.residents),
            languages=len(languages),
            members=len(cast.members),
        ),
        N_("  Database: %(path)s (temporary)", path=path)
        if temporary
        else N_("  Database: %(path)s", path=path),
        N_(
            "  Staff login: %(email)s / password %(password)s  (dashboard %(url)s/ after the "
            "round)",
            email=cast.email,
            password=cast.password,
            url=dashboard,
        )
        if dashboard
        else N_(
            "  Staff login: %(email)s / password %(password)s",
            email=cast.email,
            password=cast.password,
        ),
        N_("  All names and phone numbers are fictional; nothing is sent (console provider)."),
    ]
    for line in lines:
        out.print(line.render(language), markup=False, highlight=False)
    out.print()


async def _play(
    engine: Engine,
    clock: Any,
    ctx: Any,
    provider: Any,
    cast: Cast,
    rng: random.Random,
    start: datetime,
    pace: float,
    err: Console,
    language: str = "en",
) -> tuple[uuid.UUID, int]:
    """The morning, step by step, with the live progress display. Webhooks go to the real
    app in-process (httpx's ASGI transport): the full stack, without a socket."""
    import httpx

    from service.app import create_app

    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        director = Director(
            engine=engine,
            clock=clock,
            ctx=ctx,
            provider=provider,
            client=client,
            cast=cast,
            rng=rng,
            start=start,
        )
        with Live(
            render_progress(director.progress(), language),
            console=err,
            auto_refresh=False,
            transient=False,
        ) as live:
            round_id = await director.start_round()
            live.update(render_progress(director.progress(), language), refresh=True)
            while director.minute < SIMULATED_MINUTES:
                tick_started = time.monotonic()
                await director.advance(STEP_MINUTES)
                live.update(render_progress(director.progress(), language), refresh=True)
                spare = pace - (time.monotonic() - tick_started)
                if spare > 0:
                    await asyncio.sleep(spare)
        return round_id, director.webhooks


def _serve(
    options: DemoOptions, cast: Cast, dashboard: str, out: Console, language: str = "en"
) -> int:
    """`mimamori serve` on the demo database, on the real clock, with the console provider."""
    import phonenumbers
    import uvicorn

    from scheduler.jobs import JobContext
    from scheduler.runner import start_in_thread
    from service.app import create_app
    from service.clock import get_clock
    from service.config import get_settings
    from service.db import get_engine
    from service.logging_setup import configure_logging
    from service.telephony.console import ConsoleProvider

    settings = get_settings()
    example = next(r for r in cast.residents if r.behaviour == FINE and r.language == "ja")
    national = phonenumbers.format_number(
        phonenumbers.parse(example.phone), phonenumbers.PhoneNumberFormat.NATIONAL
    )
    prefix = "" if options.port == 8000 else f"MIMAMORI_PUBLIC_URL={dashboard} "
    serving = N_(
        "Serving the dashboard at %(url)s/ (API docs at %(url)s/docs) until Ctrl-C. To text "
        "the service as a resident from another terminal:",
        url=dashboard,
    )
    out.print()
    out.print(serving.render(language), markup=False, highlight=False)
    command = f'  {prefix}mimamori simulate sms --from {national} "元気です" --url {dashboard}'
    out.print(command, markup=False, highlight=False)  # a command: the same in every language
    # Requests and jobs would scroll the summary away: problems only, unless asked for more.
    configure_logging(os.environ.get("MIMAMORI_LOG_LEVEL", "WARNING"), settings.log_json)
    ctx = JobContext(
        engine=get_engine(), clock=get_clock(), settings=settings, provider=ConsoleProvider()
    )
    _thread, stop = start_in_thread(ctx)
    try:
        uvicorn.run(
            create_app(),
            host=options.host,
            port=options.port,
            log_config=None,
            proxy_headers=False,
        )
    finally:
        stop.set()
        _thread.join(timeout=10)
    return 0
