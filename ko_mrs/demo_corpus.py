"""A synthetic Korean dialogue corpus for the demo and the tests, generated from a seed.

This corpus is synthetic: the project writes it itself from templates and slot fillers; it is not
third-party data and falls under the project's own licence. It exists so that the whole
pipeline (data layer, tokenizer, post-training, fine-tuning, ranking) can run offline anywhere. It
checks that the pipeline works, not how good a model is: use real data for quality numbers.

Nine everyday domains share the dialogues about equally. Car buying and tea/coffee both use the word
"차" (car / tea), so a model has to read the context rather than match one word. Every reply names the
slot values of its own dialogue (model, tea, city, dish, team...), so a retrieval model or BM25 can
in principle tell the true next utterance from utterances of other dialogues.

    python demo_corpus.py --out data/demo [--n-dialogues 480] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ko_mrs.dialogue_data import SPLITS, assign_split, write_jsonl

# --------------------------------------------------------------------------------------------------
# Korean particles: a template writes "{city:은}" and gets "서울은" or "대구는", "{model:을}" gets "쏘렌토를"
# or "아이오닉 5를": the particle follows the final consonant of the slot value.
# --------------------------------------------------------------------------------------------------

# spec -> (after a final consonant, after a vowel)
_JOSA = {
    "은": ("은", "는"),
    "이": ("이", "가"),
    "을": ("을", "를"),
    "이랑": ("이랑", "랑"),
    "이라": ("이라", "라"),
    "이라서": ("이라서", "라서"),
    "이라는": ("이라는", "라는"),
    "이면": ("이면", "면"),
    "이래": ("이래", "래"),
    "이야": ("이야", "야"),
    "이지": ("이지", "지"),
}
# Final consonant of each digit as read in Sino-Korean (영 일 이 삼 사 오 육 칠 팔 구); 8 is ㄹ.
_DIGIT_FINAL = {"0": 21, "1": 8, "2": 0, "3": 16, "4": 0, "5": 0, "6": 1, "7": 8, "8": 8, "9": 0}
_RIEUL = 8


def _final_consonant(word: str) -> int:
    """Index of the last syllable's final consonant (0: none, 8: ㄹ); Latin letters count as none."""
    last = word.rstrip()[-1:]
    if "가" <= last <= "힣":
        return (ord(last) - ord("가")) % 28
    return _DIGIT_FINAL.get(last, 0)


class _JosaFormatter(string.Formatter):
    """str.format with particle specs, so one template fits every slot value."""

    def format_field(self, value: Any, format_spec: str) -> str:
        text = str(value)
        final = _final_consonant(text)
        if format_spec == "으로":
            return text + ("로" if final in (0, _RIEUL) else "으로")
        if format_spec in _JOSA:
            with_final, without = _JOSA[format_spec]
            return text + (with_final if final else without)
        return super().format_field(value, format_spec)


_FORMATTER = _JosaFormatter()


def _fill(template: str, slots: dict[str, str]) -> str:
    return _FORMATTER.format(template, **slots)


# --------------------------------------------------------------------------------------------------
# Dialogue skeleton: opening exchange, an ordered subset of topic exchanges, closing exchange.
# --------------------------------------------------------------------------------------------------

# (first speaker's variants, second speaker's variants); every pairing of the two must make sense.
Exchange = tuple[tuple[str, ...], tuple[str, ...]]


@dataclass(frozen=True)
class _Domain:
    """One domain: who talks, how slots are drawn, and the exchanges a dialogue is built from."""

    name: str
    speakers: tuple[str, str]
    slots: Callable[[random.Random], dict[str, str]]
    opening: tuple[Exchange, ...]
    topics: tuple[tuple[Exchange, ...], ...]  # in conversational order; each has alternatives
    closing: tuple[Exchange, ...]


def _clock(rng: random.Random, first_hour: int, last_hour: int) -> str:
    hour = rng.randint(first_hour, last_hour)
    half = " 반" if rng.random() < 0.4 else ""
    if hour < 12:
        return f"오전 {hour}시{half}"
    return f"오후 {hour - 12 if hour > 12 else 12}시{half}"


def _manwon(amount: int) -> str:
    return f"{amount:,}만 원"


def _surname(rng: random.Random) -> str:
    return rng.choice("김이박최정강조윤장임한오서신권황")


# ---------------------------------------------------------------------------------------------- car

_CARS = (  # model, class, base price (만 원), electric, boot (L)
    ("캐스퍼", "경형 SUV", 1400, False, 280),
    ("모닝", "경차", 1300, False, 255),
    ("레이", "경차", 1450, False, 330),
    ("아반떼", "준중형 세단", 2000, False, 470),
    ("K5", "중형 세단", 2600, False, 480),
    ("쏘나타", "중형 세단", 2800, False, 510),
    ("그랜저", "준대형 세단", 3800, False, 480),
    ("코나", "소형 SUV", 2500, False, 410),
    ("셀토스", "소형 SUV", 2300, False, 500),
    ("니로", "소형 SUV", 2800, False, 450),
    ("투싼", "준중형 SUV", 2800, False, 620),
    ("스포티지", "준중형 SUV", 2700, False, 640),
    ("싼타페", "중형 SUV", 3500, False, 720),
    ("쏘렌토", "중형 SUV", 3400, False, 700),
    ("토레스", "중형 SUV", 3000, False, 700),
    ("팰리세이드", "대형 SUV", 4300, False, 700),
    ("카니발", "미니밴", 3600, False, 900),
    ("아이오닉 5", "전기 SUV", 4700, True, 530),
    ("코나 일렉트릭", "소형 전기 SUV", 4200, True, 400),
    ("캐스퍼 일렉트릭", "경형 전기 SUV", 2900, True, 300),
)
_CAR_NEEDS = (  # purpose, why that car, why the space matters
    ("출퇴근용", "회사가 좀 멀어서", "주말엔 골프 가방을 싣고 다녀서"),
    ("가족용", "아이가 둘이라", "아이가 둘이라 유모차까지 실어야 해서"),
    ("캠핑용", "주말마다 캠핑을 다녀서", "캠핑 장비가 많아서"),
    ("나들이용", "주말에 부모님을 자주 모셔서", "부모님을 뒷좌석에 편하게 모셔야 해서"),
    ("영업용", "외근이 많아서", "샘플 상자를 싣고 다녀야 해서"),
    ("장거리 운전용", "지방 출장이 잦아서", "출장 짐이 많아서"),
    ("통학용", "아이들 학원 데려다줄 일이 많아서", "아이들 친구까지 태울 때가 많아서"),
)
_COLOURS = ("흰색", "검은색", "회색", "남색", "빨간색", "은색", "카키색", "하늘색")
_TRIMS = ("기본형", "중간 트림", "최고급 트림", "프레스티지", "노블레스", "시그니처", "캘리그래피")
_DAYS = ("내일", "모레", "이번 주 토요일", "이번 주 일요일", "다음 주 월요일", "다음 주 수요일")


def _car_slots(rng: random.Random) -> dict[str, str]:
    model, kind, price, electric, boot = rng.choice(_CARS)
    purpose, why, cargo = rng.choice(_CAR_NEEDS)
    if electric:
        fuel, eff_q = "전기", "한 번 충전하면 얼마나 달려요?"
        eff = f"한 번 충전에 {rng.randrange(300, 501, 10)}킬로"
    else:
        fuel = rng.choice(("가솔린", "하이브리드"))
        eff_q = "연비가 어느 정도 나와요?"
        litre = rng.randint(15, 21) if fuel == "하이브리드" else rng.randint(9, 14)
        eff = f"복합 연비가 리터당 {litre}킬로"
        price += 300 if fuel == "하이브리드" else 0
    price += rng.randrange(0, 300, 10)
    months = rng.choice((24, 36, 48, 60))
    old_years = rng.randint(5, 15)
    return {
        "model": model, "kind": kind, "fuel": fuel, "eff": eff, "eff_q": eff_q,
        "purpose": purpose, "why": why, "cargo": cargo, "boot": str(boot + rng.randrange(-20, 21, 5)),
        "price": _manwon(price), "budget": _manwon(price + rng.randrange(100, 801, 100)),
        "discount": _manwon(rng.randrange(50, 301, 50)), "trim": rng.choice(_TRIMS),
        "colour": rng.choice(_COLOURS), "weeks": str(rng.randint(2, 12)),
        "months": str(months), "monthly": _manwon(round(price * 1.06 / months)),
        "old_years": str(old_years), "trade": _manwon(max(150, 1500 - 90 * old_years + rng.randrange(0, 300, 50))),
        "day": rng.choice(_DAYS), "time": _clock(rng, 10, 18),
    }  # fmt: skip


_CAR = _Domain(
    name="car",
    speakers=("손님", "직원"),
    slots=_car_slots,
    opening=(
        (
            (
                "안녕하세요, {purpose:으로} 탈 차를 한 대 사려고 하는데요. {model:을} 좀 보고 싶어요.",
                "저기요, {model} 보러 왔어요. {why} {purpose} 차가 필요하거든요.",
                "안녕하세요. 지금 타는 차가 {old_years}년이 넘어서 {model:으로} 바꿔 볼까 하는데요.",
            ),
            (
                "어서 오세요. {model:은} {kind:이라} {purpose:으로} 많이들 찾으세요. 어떤 게 제일 궁금하세요?",
                "반갑습니다. {purpose:으로} {model} 쪽을 보시는군요. 편하게 물어보세요, 자세히 안내해 드릴게요.",
                "네, 잘 오셨어요. 마침 {colour} {model} 전시차가 있어서 바로 앉아 보실 수 있어요.",
            ),
        ),
    ),
    topics=(
        (
            (
                (
                    "예산은 {budget} 정도인데, {model:은} 얼마부터 시작해요?",
                    "{model} 가격이 어떻게 돼요? 저는 {budget} 안쪽으로 생각하고 있어요.",
                    "솔직히 {budget} 넘으면 부담스러운데 {model:이} 그 안에 들어와요?",
                ),
                (
                    "{model} {fuel} 모델이 {price}부터라서 {budget:이면} {trim}까지 보실 수 있어요.",
                    "{model:은} {price}부터 시작하고, 이번 달에 {discount} 할인도 들어가서 예산 안에 맞추실 수 있어요.",
                ),
            ),
        ),
        (
            (
                (
                    "{model} {fuel} 모델은 {eff_q}",
                    "{purpose:으로} 쓰려면 유지비가 중요해서요. {model} {fuel} 모델은 {eff_q}",
                ),
                (
                    "{model} {fuel} 모델은 {eff} 정도라서 {purpose:으로} 쓰시기에 경제적이에요.",
                    "실제로 타 보시면 {eff} 정도 나와요. {model:은} {purpose:으로} 타시는 분들 만족도가 높아요.",
                ),
            ),
        ),
        (
            (
                (
                    "{cargo} 뒷좌석이랑 트렁크가 넉넉해야 하거든요. {model} 공간은 어때요?",
                    "{cargo} 실내 공간이 중요해요. {model} 안에 한번 앉아 봐도 돼요?",
                ),
                (
                    "그럼요, 앉아 보세요. {model} 트렁크가 {boot}리터라서 짐이 많아도 충분해요.",
                    "{model:은} {kind} 중에서도 실내가 넓은 편이에요. 트렁크도 {boot}리터나 돼요.",
                ),
            ),
        ),
        (
            (
                (
                    "{model} 색상은 {colour:이} 예쁠 것 같은데 바로 출고되나요?",
                    "{colour} {model:은} 지금 재고가 있어요?",
                ),
                (
                    "{colour:은} 인기가 많아서 지금 계약하시면 출고까지 {weeks}주 정도 걸려요.",
                    "{colour} {model:은} 주문이 밀려 있어서 {weeks}주 정도 기다리셔야 해요.",
                ),
            ),
        ),
        (
            (
                (
                    "지금 타는 차가 {old_years}년 된 건데 {model} 살 때 보상 판매도 되나요?",
                    "타던 차는 {old_years}년 됐는데 {model} 계약하면서 여기서 팔 수 있어요?",
                ),
                (
                    "네, {old_years}년 된 차면 상태에 따라 {trade} 정도 보상받으실 수 있어요.",
                    "가능해요. 연식이 {old_years}년이면 대략 {trade} 선에서 매입해서 {model} 가격에서 빼 드릴게요.",
                ),
            ),
        ),
        (
            (
                (
                    "{model:을} {months}개월 할부로 사면 한 달에 얼마쯤 내요?",
                    "한 번에 내기는 어려워서요. {model:은} {months}개월 할부도 되나요?",
                ),
                (
                    "{months}개월로 하시면 {model} {trim} 기준으로 월 {monthly} 정도예요.",
                    "네, {months}개월까지 가능하고 선수금 없이 하시면 월 {monthly} 정도 나와요.",
                ),
            ),
        ),
        (
            (
                (
                    "{model:은} 한번 타 보고 결정하고 싶은데 {day} 시승 돼요?",
                    "{model} 시승 예약할 수 있을까요? {day:은} 시간이 되는데요.",
                ),
                (
                    "물론이죠. {day} {time}에 {model} 시승차 비워 둘게요.",
                    "네, {day} {time:으로} 시승 예약 잡아 드릴게요. 운전면허증만 챙겨 오세요.",
                ),
            ),
        ),
    ),
    closing=(
        (
            ("좋아요, {model} {trim:으로} 견적서 한 장 뽑아 주세요.",),
            ("네, {model} {trim} 견적서 바로 준비해 드릴게요. 잠시만 앉아 계세요.",),
        ),
        (
            ("오늘 들은 {model} 얘기 가족이랑 상의해 보고 {day} 다시 올게요.",),
            ("네, 천천히 상의해 보세요. {day} 오시면 {discount} 할인 꼭 챙겨 드릴게요.",),
        ),
        (
            ("설명 잘 들었어요. {colour} {model:으로} 거의 마음을 정했어요.",),
            ("감사합니다. {model:은} {purpose:으로} 후회 없으실 거예요.",),
        ),
    ),
)

# ---------------------------------------------------------------------------------------------- tea


class _Tea(NamedTuple):
    name: str
    water: int  # °C
    minutes: int
    taste: str
    caffeine: bool


_TEAS = (
    _Tea("녹차", 80, 2, "풋풋하고 담백한", True),
    _Tea("현미녹차", 85, 2, "고소한", True),
    _Tea("보이차", 95, 3, "구수하고 묵직한", True),
    _Tea("우롱차", 90, 3, "꽃향이 은은한", True),
    _Tea("얼그레이", 95, 3, "베르가못 향이 상큼한", True),
    _Tea("홍차", 95, 3, "진하고 살짝 떫은", True),
    _Tea("백차", 80, 4, "은은하고 달큰한", True),
    _Tea("자스민차", 85, 3, "꽃향기가 진한", True),
    _Tea("캐모마일", 95, 5, "사과 향이 나는 부드러운", False),
    _Tea("루이보스", 95, 5, "달큰하고 순한", False),
    _Tea("페퍼민트차", 95, 4, "시원하고 개운한", False),
    _Tea("둥굴레차", 95, 5, "구수한", False),
    _Tea("히비스커스", 95, 5, "새콤한", False),
    _Tea("메밀차", 95, 3, "고소한", False),
)
_COFFEES = ("아메리카노", "카페라떼", "콜드브루", "바닐라라떼", "플랫화이트", "카푸치노", "핸드드립 커피")
_BEANS = (  # origin, flavour
    ("에티오피아", "꽃향이랑 산뜻한 산미"),
    ("콜롬비아", "균형 잡힌 단맛"),
    ("케냐", "새콤한 과일 맛"),
    ("과테말라", "초콜릿 같은 쌉쌀함"),
    ("브라질", "견과류 같은 고소함"),
    ("코스타리카", "깔끔한 단맛"),
)
_AREAS = ("연남동", "성수동", "익선동", "망원동", "서촌", "을지로", "해방촌", "북촌", "문래동", "합정")
_TEAHOUSES = ("다락", "소담", "느린숲", "모퉁이", "하루", "달빛정원", "차마루", "다원", "온새미", "솔바람", "고요")
_ELDERS = ("엄마", "아빠", "할머니", "할아버지", "이모", "팀장님", "선생님", "삼촌")
_CUPS = ("두", "세", "네", "다섯")
_VESSELS = ("머그잔", "텀블러", "보온병", "큰 컵", "유리컵")
_PAIRINGS = ("약과", "쿠키", "양갱", "마들렌", "떡", "견과류", "스콘")


def _tea_slots(rng: random.Random) -> dict[str, str]:
    tea = rng.choice(_TEAS)
    origin, flavour = rng.choice(_BEANS)
    caffeine = (
        "카페인이 커피보다 훨씬 적어서 오후에 한두 잔은 괜찮아"
        if tea.caffeine
        else "카페인이 거의 없어서 자기 전에 마셔도 괜찮아"
    )
    return {
        "tea": tea.name, "temp": str(tea.water), "minutes": str(tea.minutes), "taste": tea.taste,
        "caffeine": caffeine, "coffee": rng.choice(_COFFEES), "cups": rng.choice(_CUPS),
        "origin": origin, "flavour": flavour, "area": rng.choice(_AREAS), "cafe": rng.choice(_TEAHOUSES),
        "price": f"{rng.randrange(6000, 9501, 500):,}원", "pot_price": f"{rng.randrange(12, 31) * 1000:,}원",
        "whom": rng.choice(_ELDERS), "day": rng.choice(("토요일", "일요일", "금요일", "수요일")),
        "time": _clock(rng, 11, 17), "vessel": rng.choice(_VESSELS), "pairing": rng.choice(_PAIRINGS),
    }  # fmt: skip


_TEA = _Domain(
    name="tea",
    speakers=("A", "B"),
    slots=_tea_slots,
    opening=(
        (
            (
                "요즘 {coffee:을} 줄이고 차를 마셔 보려고 하는데, {tea} 어때?",
                "커피 대신 차를 좀 마셔 볼까 해. {tea:은} 마셔 봤어?",
            ),
            (
                "{tea:은} {taste} 맛이라 {coffee} 좋아하는 사람도 처음 마시기에 딱 좋아.",
                "{tea} 좋지. {taste} 맛이라 나도 {coffee} 대신 자주 마셔.",
            ),
        ),
        (
            (
                "너 차 좋아하잖아. 나도 {tea:을} 한 통 샀는데 어떻게 마셔야 할지 모르겠어.",
                "{whom:이} {tea:을} 주셨는데 차는 처음이라 잘 모르겠어.",
            ),
            (
                "오, {tea} 괜찮은 거야. {pairing:이랑} 같이 마시면 금방 좋아하게 될걸.",
                "{tea:이면} 어렵지 않아. {vessel} 하나만 있으면 누구나 맛있게 우릴 수 있어.",
            ),
        ),
        (
            ("나 요즘 {coffee:을} 하루에 {cups} 잔씩 마셔. 차로 좀 바꿔 볼까?",),
            ("좋은 생각이야. 처음엔 {tea}부터 시작해 봐. {coffee}보다 순하고 {taste} 맛이라 부담이 없어.",),
        ),
    ),
    topics=(
        (
            (
                (
                    "{vessel}에 {tea:을} 우릴 건데 물 온도는 몇 도가 좋아?",
                    "{tea:을} {vessel}에 우릴 때 몇 분 정도 두면 돼?",
                ),
                (
                    "{vessel:이면} {temp}도 정도 되는 물에 {minutes}분만 우리면 돼. 너무 오래 두면 써져.",
                    "{tea:은} {temp}도쯤 되는 물에 {minutes}분이 딱 좋아. {vessel}에 차를 오래 두면 떫어지거든.",
                ),
            ),
        ),
        (
            (
                (
                    "근데 차에도 카페인이 있어? 나 하루에 {coffee}만 {cups} 잔은 마시거든.",
                    "저녁에 {tea} 마셔도 돼? 요즘 {coffee} 때문에 잠을 잘 못 자서.",
                ),
                (
                    "{tea:은} {caffeine}. {coffee}보다는 훨씬 낫지.",
                    "{coffee:이랑} 비교하면 훨씬 순해. {tea:은} {caffeine}.",
                ),
            ),
        ),
        (
            (
                ("{area}에 {tea} 마시러 갈 만한 데 있어?", "{tea} 제대로 하는 찻집 알아? {area} 쪽이면 좋겠는데."),
                (
                    "{area}에 있는 {cafe:이라는} 찻집 가 봐. {tea} 한 주전자에 {price:이야}.",
                    "{cafe:이라는} 데가 {area} 골목 안에 있는데 {tea:을} 정말 잘 우려 줘.",
                ),
            ),
        ),
        (
            (
                (
                    "커피는 원두 뭐 좋아해? 나는 {coffee:은} {origin} 원두로 마셔.",
                    "요즘 {origin} 원두로 내린 {coffee}에 빠졌어.",
                ),
                (
                    "{origin} 원두는 {flavour:이} 있어서 {coffee:으로} 마시면 딱이야.",
                    "{origin} 원두 좋지. 나는 {cafe}에서 처음 마셔 봤는데 {flavour:이} 살아 있더라.",
                ),
            ),
        ),
        (
            (
                ("{whom} 선물로 {tea} 세트 사 드리려는데 괜찮을까?",),
                (
                    "좋지. {whom:이} 차 좋아하시면 {tea:은} 티백보다 잎차로 사 드려.",
                    "{tea} 세트면 무난해. 예쁜 찻잔도 하나 같이 드리면 {whom:이} 더 좋아하실 거야.",
                ),
            ),
        ),
        (
            (
                ("{tea} 마시려면 다구를 따로 사야 해? 집에 {vessel}밖에 없거든.",),
                (
                    "처음엔 {pot_price}짜리 유리 티포트 하나면 충분해.",
                    "아니, {vessel}에 거름망 하나면 돼. {tea:은} 잎이 펴지는 걸 보는 재미도 있어.",
                ),
            ),
        ),
        (
            (
                ("이번 주 {day}에 {area:으로} 차 마시러 갈래?",),
                ("좋아, {day} {time}에 {area}에서 보자.", "응, {day:은} 괜찮아. {time}쯤 {cafe} 앞에서 만나자."),
            ),
        ),
    ),
    closing=(
        (
            (
                "고마워, 오늘 집에 가서 {vessel}에 {tea}부터 우려 볼게.",
                "알려 줘서 고마워. 오늘 저녁엔 {coffee} 말고 {tea} 마셔야겠다.",
            ),
            (
                "응, {temp}도에 {minutes}분! {pairing:이랑} 같이 먹어 보고 맛 어땠는지 알려 줘.",
                "좋아, {tea} 입에 맞으면 다음엔 {cafe}에도 같이 가자.",
            ),
        ),
        (
            ("그럼 {day} {time}에 {cafe}에서 보자.",),
            ("좋아, 내가 먼저 가서 {tea} 한 주전자랑 {pairing} 시켜 놓을게.",),
        ),
    ),
)

# ------------------------------------------------------------------------------------------ weather


class _Weather(NamedTuple):
    forecast: str
    item: str
    why: str
    low: tuple[int, int]
    high: tuple[int, int]
    bad: bool
    question: str  # may use {city} {day}
    answer: str  # may use {end} {prob} {amount} {low} {feel}


_WEATHERS = (
    _Weather("오후부터 비가 온대", "우산", "길이 미끄러울 거야", (12, 16), (17, 24), True,
             "{city}에는 비가 언제까지 온대?", "{end}쯤 그친대. 강수 확률이 {prob}퍼센트래."),
    _Weather("밤새 눈이 온대", "목도리랑 장갑", "길이 얼어서 엄청 미끄러울 거야", (-7, -3), (-1, 3), True,
             "{city}에 눈은 얼마나 쌓인대?", "많이 오는 데는 {amount}센티까지 쌓인대. 차는 두고 가."),
    _Weather("하루 종일 맑대", "선크림", "햇볕이 꽤 강할 거야", (10, 16), (20, 27), False,
             "{day} {city} 자외선은 괜찮대?", "자외선 지수가 {uv:이래}. 모자 하나 챙기면 좋아."),
    _Weather("폭염 특보가 내려졌대", "양산이랑 물", "낮에 밖에 오래 있으면 위험해", (25, 28), (33, 37), True,
             "{city:은} 밤에도 더울까?", "열대야라서 밤에도 {low}도 밑으로 안 떨어진대."),
    _Weather("한파가 온대", "두꺼운 패딩", "바람 때문에 체감 온도는 더 낮을 거야", (-14, -8), (-6, -2), True,
             "{city} 체감 온도는 몇 도래?", "바람이 세서 체감 온도는 영하 {feel}도까지 내려간대."),
    _Weather("미세먼지가 나쁨이래", "마스크", "목이 금방 칼칼해질 거야", (8, 14), (16, 22), True,
             "{city} 미세먼지는 언제쯤 괜찮아진대?", "{city:은} {end}부터 바람이 불어서 좀 나아진대."),
    _Weather("흐리고 바람이 좀 분대", "얇은 바람막이", "해가 안 나서 생각보다 쌀쌀할 거야", (9, 13), (15, 19), False,
             "{day} {city}에 비 소식은 없어?", "강수 확률이 {dry_prob}퍼센트라 비는 안 올 것 같아."),
    _Weather("태풍이 올라와서 비바람이 세대", "우비", "바람이 세서 우산은 소용없을 거야", (21, 24), (25, 29), True,
             "태풍은 {city:을} 언제 지나간대?", "태풍은 {end}쯤 {city:을} 빠져나간대. 그 전엔 밖에 안 나가는 게 좋아."),
)  # fmt: skip
_CITIES = ("서울", "부산", "대구", "인천", "광주", "대전", "울산", "제주", "강릉", "전주", "춘천", "여수",
           "포항", "수원", "청주", "속초", "목포", "안동")  # fmt: skip
_OUTINGS = ("등산", "캠핑", "피크닉", "낚시", "바다 구경", "시장 구경", "꽃구경", "자전거 여행")
_WEATHER_DAYS = ("내일", "모레", "이번 주 토요일", "이번 주 일요일", "다음 주 월요일", "이번 주말")


def _degrees(value: int) -> str:
    return f"영하 {-value}" if value < 0 else str(value)


def _weather_slots(rng: random.Random) -> dict[str, str]:
    weather, other = rng.sample(_WEATHERS, 2)
    city, city2 = rng.sample(_CITIES, 2)
    day, alt_day = rng.sample(_WEATHER_DAYS, 2)
    low, high = rng.randint(*weather.low), rng.randint(*weather.high)
    slots = {
        "city": city, "city2": city2, "day": day, "alt_day": alt_day, "plan": rng.choice(_OUTINGS),
        "forecast": weather.forecast, "forecast2": other.forecast, "item": weather.item, "why": weather.why,
        "low": _degrees(low), "high": _degrees(high), "alt_high": _degrees(high + rng.randint(2, 5)),
        "end": rng.choice(("저녁 7시", "밤 10시", "다음 날 새벽", "다음 날 아침", "오후 4시")),
        "prob": str(rng.randrange(60, 101, 10)), "dry_prob": str(rng.randrange(10, 31, 10)),
        "amount": str(rng.randint(3, 20)),
        "feel": str(-low + rng.randint(3, 7)),
        "compare": "거기도 별로네." if other.bad else "거기는 괜찮겠다.", "uv": str(rng.randint(5, 10)),
    }  # fmt: skip
    slots["question"] = _fill(weather.question, slots)
    slots["answer"] = _fill(weather.answer, slots)
    slots["verdict"] = _fill(
        "응, {day:은} 좀 무리야. {alt_day:으로} 미루자. 그날은 맑대."
        if weather.bad
        else "아니, 낮에 {high}도 정도면 {plan}하기 딱 좋은 날씨야.",
        slots,
    )
    return slots


_WEATHER = _Domain(
    name="weather",
    speakers=("A", "B"),
    slots=_weather_slots,
    opening=(
        (
            ("{city} {day} 날씨 어떻대?", "혹시 {day} {city} 날씨 봤어?"),
            ("{city:은} {day} {forecast}.", "일기 예보 보니까 {city:은} {day} {forecast}."),
        ),
        (
            ("{day} {city}에서 {plan:을} 하기로 했는데 날씨 괜찮을까?",),
            ("음, {city:은} {day} {forecast}.", "방금 봤는데 {city:은} {day} {forecast}."),
        ),
    ),
    topics=(
        (
            (
                ("{day} {city} 기온은 몇 도래?", "{city} 가면 많이 춥거나 덥진 않대?"),
                (
                    "최고 {high}도, 최저 {low}도래. {why}.",
                    "{city:은} 낮에도 {high}도 정도래. 아침엔 {low}도까지 떨어진대.",
                ),
            ),
        ),
        ((("{question}",), ("{answer}",)),),
        (
            (
                ("그럼 {city:으로} {plan} 갈 때 뭘 챙기면 좋을까?", "{day} {city} 가는데 옷은 어떻게 입어야 할까?"),
                ("{item:은} 꼭 챙겨. {day} {city:은} {why}.", "{item} 챙기는 거 잊지 마. {day:은} {why}."),
            ),
        ),
        (
            (
                ("{day} {plan:은} 다음으로 미뤄야 할까?", "이 날씨에 {city:으로} {plan} 가도 될까?"),
                ("{verdict}",),
            ),
        ),
        (
            (
                ("{city2:은} 어떻대? {plan} 장소를 거기로 바꿀까 생각 중이야.",),
                ("{city2:은} {day} {forecast2}. {compare}",),
            ),
        ),
        (
            (
                ("{alt_day:은} 어때? {plan:을} 그날로 옮길까 해서.",),
                ("{alt_day:은} 하루 종일 맑대. 최고 기온도 {alt_high}도라 {day}보다 훨씬 낫지.",),
            ),
        ),
    ),
    closing=(
        (
            ("알려 줘서 고마워. {city} 갈 때 {item} 꼭 챙길게.",),
            ("응, {city} 잘 다녀와. {plan} 재밌게 하고!", "그래, {day} {plan} 조심히 다녀와."),
        ),
        (
            ("{city} 날씨는 자주 바뀌니까 {day} 아침에 한 번 더 확인해 봐야겠다.",),
            ("맞아, {item} 챙기고 나가기 전에 {city} 예보 꼭 다시 봐.",),
        ),
    ),
)

# --------------------------------------------------------------------------------------------- food


class _Dish(NamedTuple):
    name: str
    ingredients: str
    side: str
    price: int  # 원
    kcal: int
    spicy: bool


_DISHES = (
    _Dish("김치찌개", "돼지고기랑 묵은지, 두부", "계란말이", 9000, 550, True),
    _Dish("된장찌개", "애호박이랑 두부, 된장", "계란찜", 8500, 400, False),
    _Dish("순두부찌개", "순두부랑 바지락, 고춧가루", "공깃밥", 9000, 450, True),
    _Dish("부대찌개", "햄이랑 소시지, 김치", "라면 사리", 11000, 800, True),
    _Dish("비빔밥", "나물이랑 고추장, 계란", "된장국", 9500, 600, False),
    _Dish("떡볶이", "떡이랑 어묵, 고추장", "튀김", 5000, 500, True),
    _Dish("닭갈비", "닭고기랑 양배추, 고구마", "볶음밥", 13000, 700, True),
    _Dish("제육볶음", "돼지고기랑 양파, 고추장", "계란후라이", 9000, 650, True),
    _Dish("칼국수", "바지락이랑 애호박, 칼국수 면", "겉절이", 9000, 550, False),
    _Dish("냉면", "냉면 면이랑 육수, 오이", "수육", 11000, 500, False),
    _Dish("삼겹살", "삼겹살이랑 상추, 쌈장", "된장찌개", 16000, 900, False),
    _Dish("짜장면", "춘장이랑 양파, 돼지고기", "탕수육", 7000, 700, False),
    _Dish("짬뽕", "오징어랑 홍합, 고춧가루", "군만두", 9000, 650, True),
    _Dish("파스타", "스파게티 면이랑 토마토소스, 마늘", "마늘빵", 15000, 750, False),
    _Dish("쌀국수", "쌀국수 면이랑 숙주, 소고기", "짜조", 11000, 500, False),
    _Dish("돈가스", "돼지고기랑 빵가루, 계란", "우동", 10000, 850, False),
    _Dish("갈비탕", "소갈비랑 무, 당면", "깍두기", 14000, 600, False),
    _Dish("감자탕", "돼지 등뼈랑 감자, 우거지", "볶음밥", 12000, 800, True),
    _Dish("초밥", "밥이랑 연어, 광어", "미소 된장국", 18000, 600, False),
    _Dish("잔치국수", "소면이랑 애호박, 멸치 육수", "김밥", 6000, 450, False),
)
_FOOD_AREAS = ("회사 앞", "학교 앞", "역 앞", "시장 골목", "강남역", "홍대", "신촌", "종로", "을지로", "건대 입구")
_SHOP_PREFIXES = ("원조", "할매", "옛날", "골목", "시장", "엄마손", "소문난", "3대째", "진미", "명가")
_DESSERTS = ("빙수", "아이스크림", "커피", "붕어빵", "호떡", "와플", "케이크", "젤라토")


def _food_slots(rng: random.Random) -> dict[str, str]:
    dish, previous = rng.sample(_DISHES, 2)
    meal = rng.choice(("점심", "저녁"))
    hour = (
        rng.choice(("12시", "12시 반", "1시", "11시 반"))
        if meal == "점심"
        else rng.choice(("6시", "6시 반", "7시", "7시 반", "8시"))
    )
    slots = {
        "dish": dish.name, "ingredients": dish.ingredients, "side": dish.side,
        "price": f"{dish.price + rng.choice((0, 500, 1000)):,}원", "kcal": str(dish.kcal + rng.randrange(-50, 51, 10)),
        "meal": meal, "time": hour, "wait": str(rng.randrange(10, 41, 5)), "area": rng.choice(_FOOD_AREAS),
        "restaurant": f"{rng.choice(_SHOP_PREFIXES)} {dish.name}집", "dessert": rng.choice(_DESSERTS),
        "previous": previous.name,
    }  # fmt: skip
    if dish.spicy:
        slots["taste_q"] = _fill("너 매운 거 잘 먹어? {restaurant} {dish:은} 좀 맵게 나온대.", slots)
        slots["taste_a"] = _fill(
            rng.choice(
                (
                    "괜찮아, 나 매운 거 좋아해. {restaurant} {dish} 얼마나 매운지 궁금하다.",
                    "나는 매운 거 약해서 {restaurant} 가면 {dish} 덜 맵게 해 달라고 하자.",
                )
            ),
            slots,
        )
    else:
        slots["taste_q"] = _fill("{restaurant} {dish:은} 양이 엄청 많대.", slots)
        slots["taste_a"] = _fill(
            rng.choice(
                (
                    "잘됐다. 나 {meal} 전에 아무것도 안 먹어서 {dish} 곱빼기도 먹을 수 있어.",
                    "그럼 {dish} 하나에 {side} 시켜서 나눠 먹자. 한 그릇에 {price:이면} 싸네.",
                )
            ),
            slots,
        )
    return slots


_FOOD = _Domain(
    name="food",
    speakers=("A", "B"),
    slots=_food_slots,
    opening=(
        (
            ("{meal} 뭐 먹을까? 나는 {dish} 당기는데.", "오늘 {meal:은} {dish} 어때?"),
            (
                "좋아, 안 그래도 {area} 쪽에서 {dish} 먹고 싶었어.",
                "{dish} 좋지. 어제 {previous} 먹어서 다른 게 당겼어.",
            ),
        ),
        (
            ("배고프다. {area}에 {dish} 잘하는 집 있대.", "{area}에 새로 생긴 {dish}집 가 봤어?"),
            (
                "진짜? {area:이면} 가깝네. {dish:이면} 무조건 가야지.",
                "아직 못 가 봤어. {meal:으로} {dish:이면} 나야 좋지.",
            ),
        ),
    ),
    topics=(
        (
            (
                (
                    "{area}에 {restaurant:이라는} 데가 {dish} 맛집이래.",
                    "{restaurant} 알아? 거기 {dish:이} 그렇게 맛있대.",
                ),
                (
                    "아, {restaurant}? 나도 들어 봤어. {dish} 한 그릇에 {price:이지}?",
                    "거기 알아. {dish} 가격도 {price} 정도라 괜찮더라.",
                ),
            ),
        ),
        ((("{taste_q}",), ("{taste_a}",)),),
        (
            (
                ("{restaurant} 웨이팅 길어? {time}쯤 가면 될까?",),
                (
                    "{time:이면} 사람 몰릴 때라 {wait}분은 기다려야 할걸.",
                    "{time}쯤이면 {wait}분 정도 줄 설 각오는 해야 돼. 좀 일찍 가자.",
                ),
            ),
        ),
        (
            (
                ("{restaurant} 가면 {dish}에 {side}도 시킬까?", "{side}도 하나 추가하자. {dish}에는 그게 잘 어울려."),
                (
                    "좋아, {side}까지 시키면 둘이 딱 배부르겠다. {dessert} 배는 남겨 두고.",
                    "{side} 좋지. 대신 {dish:은} 보통으로 시키고 {dessert}도 먹자.",
                ),
            ),
        ),
        (
            (
                ("아니면 {restaurant} 말고 집에서 {dish} 해 먹을까?",),
                ("그것도 좋다. {ingredients}만 있으면 되니까 마트 들렀다 가자. {dessert}도 사고.",),
            ),
        ),
        (
            (
                ("나 요즘 다이어트 중이라 {meal:은} 가볍게 먹어야 하는데 {dish:은} 칼로리 높겠지?",),
                (
                    "{dish:은} 한 그릇에 {kcal}칼로리 정도래. 한 끼 정도는 괜찮아.",
                    "{kcal}칼로리쯤 된대. 대신 저녁은 가볍게 먹으면 되지.",
                ),
            ),
        ),
        (
            (
                ("오늘은 내가 살게. 저번에 {previous} 네가 샀잖아.",),
                ("고마워. 그럼 {dish} 먹고 후식으로 {dessert:은} 내가 살게.",),
            ),
        ),
    ),
    closing=(
        (
            ("좋아, 그럼 {time}에 {restaurant} 앞에서 보자.",),
            (
                "응, {time}에 늦지 마. 배고파서 {dish} 두 그릇 먹을지도 몰라.",
                "알았어. {time} 전에 먼저 도착하면 {dish} 두 개 주문해 둘게.",
            ),
        ),
        (
            ("벌써 배고프다. 얼른 {area:으로} {dish} 먹으러 가자.",),
            ("그래, {dish} 먹고 나서 {dessert}도 먹자.",),
        ),
    ),
)

# ------------------------------------------------------------------------------------------- sports

_BASEBALL_TEAMS = ("LG 트윈스", "두산 베어스", "기아 타이거즈", "삼성 라이온즈", "롯데 자이언츠", "한화 이글스",
                   "SSG 랜더스", "NC 다이노스", "KT 위즈", "키움 히어로즈")  # fmt: skip
_FOOTBALL_TEAMS = ("전북 현대", "FC 서울", "수원 삼성", "포항 스틸러스", "인천 유나이티드", "제주 유나이티드",
                   "대전 하나시티즌", "울산 현대")  # fmt: skip
_PLAYERS = ("김민준", "이도현", "박서준", "최현우", "정우진", "강태윤", "윤지호", "한승민", "오재현", "서지훈",
            "임건우", "장하늘", "신동혁", "권유찬")  # fmt: skip
_EXERCISES = ("헬스", "수영", "러닝", "테니스", "배드민턴", "클라이밍", "요가", "필라테스", "탁구", "스쿼시")


def _sports_slots(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.6:
        team, team2 = rng.sample(_BASEBALL_TEAMS, 2)
        stadium = rng.choice(("잠실", "사직", "고척", "문학", "창원", "수원", "대전", "광주", "대구")) + " 야구장"
        won, pred = rng.randint(3, 12), f"{rng.randint(3, 8)}대 {rng.randint(0, 2)}"
        clutch = rng.choice(("9회 말 끝내기 안타", "8회에 나온 역전 홈런", "마지막 병살 수비", "7회 만루 홈런"))
        stat = rng.choice((f"홈런을 {rng.randint(12, 35)}개나 쳤어", f"타율이 3할 {rng.randint(1, 9)}푼이야"))
        seat = rng.choice(("1루 응원석", "3루 내야석", "외야 자유석", "중앙 테이블석"))
        food = rng.choice(("치킨이랑 맥주", "떡볶이", "곱창", "핫도그", "삼겹살 도시락"))
        rank = "{rank}위인데 {team2:이랑} {gap}경기 차이라 가을 야구도 노려볼 만해"
        gap = f"{rng.randint(0, 5)}.5"
    else:
        team, team2 = rng.sample(_FOOTBALL_TEAMS, 2)
        stadium = rng.choice(("상암", "전주", "수원", "포항", "인천", "제주", "대전", "울산")) + " 경기장"
        won, pred = rng.randint(1, 4), f"{rng.randint(1, 3)}대 0"
        clutch = rng.choice(("후반 추가 시간 결승골", "막판 프리킥 골", "골키퍼 선방", "후반 역전골"))
        stat = rng.choice((f"벌써 {rng.randint(6, 20)}골이나 넣었어", f"도움만 {rng.randint(5, 14)}개야"))
        seat = rng.choice(("N석 응원석", "E석 2층", "W석 중앙", "S석"))
        food = rng.choice(("치킨이랑 맥주", "핫도그", "닭강정", "어묵", "김밥"))
        rank = "{rank}위인데 {team2:이랑} 승점 {gap}점 차이라 순위 싸움이 치열해"
        gap = str(rng.randint(1, 9))
    exercise, exercise2 = rng.sample(_EXERCISES, 2)
    slots = {
        "team": team, "team2": team2, "stadium": stadium, "clutch": clutch, "stat": stat, "seat": seat,
        "food": food, "player": rng.choice(_PLAYERS), "rank": str(rng.randint(1, 6)), "gap": gap,
        "score": f"{won}대 {rng.randint(0, won - 1)}", "pred": pred,
        "day": rng.choice(("토요일", "일요일", "금요일", "수요일")),
        "open_day": rng.choice(("월요일", "화요일", "수요일", "목요일")),
        "exercise": exercise, "exercise2": exercise2, "freq": str(rng.randint(2, 5)), "weeks": str(rng.randint(2, 10)),
    }  # fmt: skip
    slots["rank_text"] = _fill(rank, slots)
    return slots


_SPORTS = _Domain(
    name="sports",
    speakers=("A", "B"),
    slots=_sports_slots,
    opening=(
        (
            ("어제 {stadium}에서 한 {team} 경기 봤어?", "너 어제 {team} 대 {team2} 경기 봤어?"),
            ("봤지! {team:이} {score:으로} 이겼잖아. {clutch:은} 진짜 짜릿했어.",),
        ),
        (
            ("이번 주 {day}에 {stadium}에서 {team} 경기 있는데 보러 갈래?",),
            ("좋아! {team} 직관 간 지 오래됐어. {team2:이랑} 붙는 경기라 재밌겠다.",),
        ),
    ),
    topics=(
        (
            (
                ("요즘 {team} {player} 선수 폼이 장난 아니더라.", "{team} {player} 선수 요즘 왜 이렇게 잘해?"),
                (
                    "맞아, {player} 선수 이번 시즌에만 {stat}.",
                    "{player} 선수가 {stat}. {team:이} 요즘 잘나가는 게 다 이유가 있어.",
                ),
            ),
        ),
        ((("{team} 이번 시즌 순위가 몇 위야? {team2:이랑} 비슷하지?",), ("지금 {rank_text}.",)),),
        (
            (
                ("{stadium} {team} 경기 표는 어떻게 구해? 주말엔 금방 매진이라던데.",),
                ("예매 앱에서 {open_day} 오전 11시에 풀려. 내가 {seat} 두 장 잡아 볼게.",),
            ),
        ),
        (
            (
                ("{stadium}에서 {team} 경기 보면서 뭐 먹어?",),
                ("{stadium}에서는 {food:이지}. 경기 보면서 먹으면 꿀맛이야.",),
            ),
        ),
        (
            (
                ("{team} 다음 {team2}전은 어떻게 될 것 같아?",),
                ("내 생각엔 {team:이} {pred:으로} 이길 것 같아. 요즘 분위기가 좋거든.",),
            ),
        ),
        (
            (
                ("너는 요즘 운동 뭐 해? 나는 {exercise} 시작한 지 {weeks}주 됐어.",),
                (
                    "나는 {exercise2:을} 주 {freq}번 하고 있어. 요즘 체력이 많이 좋아졌어.",
                    "{exercise} 재밌겠다. 나는 {exercise2:을} 주 {freq}번씩 해.",
                ),
            ),
        ),
    ),
    closing=(
        (
            ("그럼 {day}에 {stadium}에서 보자. 유니폼 입고 와!",),
            ("당연하지! {team} 응원가 연습해 갈게.",),
        ),
        (
            ("다음 {team} 홈경기도 {stadium}에서 같이 보자.",),
            ("좋아, {team:이} 이기면 그땐 내가 {food} 살게.",),
        ),
    ),
)

# ------------------------------------------------------------------------------------------- travel


class _Place(NamedTuple):
    name: str
    transport: str
    travel_time: str
    area: str
    sight: str
    food: str
    souvenir: str
    abroad: bool


_PLACES = (
    _Place("제주도", "비행기", "김포에서 한 시간", "애월", "성산 일출봉", "흑돼지", "감귤 초콜릿", False),
    _Place("부산", "KTX", "서울역에서 두 시간 반", "해운대", "감천 문화 마을", "돼지국밥", "어묵", False),
    _Place("경주", "KTX", "서울역에서 두 시간", "황리단길", "불국사", "쌈밥", "황남빵", False),
    _Place("강릉", "KTX", "서울역에서 두 시간", "안목 해변", "커피 거리", "초당 순두부", "커피콩빵", False),
    _Place("여수", "KTX", "용산역에서 세 시간", "돌산", "오동도", "게장 백반", "갓김치", False),
    _Place("전주", "고속버스", "서울에서 두 시간 반", "한옥 마을", "경기전", "비빔밥", "초코파이", False),
    _Place("속초", "고속버스", "서울에서 두 시간 반", "속초 해변", "설악산", "물회", "닭강정", False),
    _Place("통영", "고속버스", "서울에서 네 시간", "강구안", "동피랑 마을", "충무김밥", "꿀빵", False),
    _Place("도쿄", "비행기", "인천에서 두 시간 반", "신주쿠", "아사쿠사", "라멘", "과자 세트", True),
    _Place("오사카", "비행기", "인천에서 한 시간 반", "난바", "도톤보리", "타코야키", "치즈케이크", True),
    _Place("후쿠오카", "비행기", "인천에서 한 시간 반", "하카타", "다자이후", "돈코츠 라멘", "명란 과자", True),
    _Place("다낭", "비행기", "인천에서 다섯 시간", "미케 비치", "바나힐", "쌀국수", "말린 망고", True),
    _Place("타이베이", "비행기", "인천에서 두 시간 반", "시먼딩", "지우펀", "우육면", "펑리수", True),
    _Place("방콕", "비행기", "인천에서 여섯 시간", "수쿰윗", "왕궁", "팟타이", "코끼리 바지", True),
)
_COMPANIONS = ("친구들", "가족", "부모님", "동생", "회사 동기들", "대학 동기들", "언니", "형")
_LODGINGS = ("호텔", "게스트하우스", "펜션", "에어비앤비", "리조트", "한옥 스테이")
_TIPS = (
    "해 질 녘에 가면 사진이 정말 예쁘게 나와",
    "아침 일찍 가야 사람이 적어",
    "주말엔 붐비니까 평일에 가는 게 좋아",
    "많이 걸어야 하니까 편한 운동화 꼭 신고 가",
    "입장권은 미리 인터넷으로 사 두면 싸",
)


def _travel_slots(rng: random.Random) -> dict[str, str]:
    place = rng.choice(_PLACES)
    nights = rng.randint(1, 4)
    budget = rng.randrange(70, 181, 10) if place.abroad else rng.randrange(20, 61, 5)
    return {
        "dest": place.name, "transport": place.transport, "travel_time": place.travel_time, "area": place.area,
        "sight": place.sight, "food": place.food, "souvenir": place.souvenir,
        "season": rng.choice(("봄", "여름", "가을", "겨울", "연휴", "방학")), "companions": rng.choice(_COMPANIONS),
        "nights": f"{nights}박 {nights + 1}일", "lodging": rng.choice(_LODGINGS),
        "lodge_price": _manwon(rng.randint(6, 25)), "budget": _manwon(budget), "tip": rng.choice(_TIPS),
        "prev_year": str(rng.randint(2016, 2024)), "wait": str(rng.randrange(10, 61, 10)),
        "gift_budget": _manwon(rng.randint(3, 10)),
    }  # fmt: skip


_TRAVEL = _Domain(
    name="travel",
    speakers=("A", "B"),
    slots=_travel_slots,
    opening=(
        (
            ("나 이번 {season}에 {dest} 가려고 해.", "이번 {season} 여행은 {dest:으로} 정했어."),
            (
                "와, {dest} 좋지! 나도 {prev_year}년에 다녀왔는데 진짜 좋았어.",
                "{dest} 부럽다. {season}에 가면 딱 좋을 거야.",
            ),
        ),
        (
            ("이번 {season}에 {dest:으로} 여행 가는데 너 가 봤지?",),
            ("응, {prev_year}년에 다녀왔어. {dest} 진짜 좋더라.",),
        ),
    ),
    topics=(
        (
            (
                ("{companions:이랑} {nights:으로} 다녀올 생각이야.",),
                (
                    "{nights:이면} {dest} 웬만한 데는 다 돌아볼 수 있어.",
                    "{companions:이랑} 가면 재밌겠다. {nights:이면} 딱 적당해.",
                ),
            ),
        ),
        (
            (
                ("{companions:이랑} {dest}까지 가려면 뭐 타는 게 제일 편해?",),
                (
                    "{companions:이랑} 가면 {transport:이} 제일 편해. {travel_time} 정도면 도착해.",
                    "나는 {prev_year}년에 {transport} 타고 갔어. {travel_time:이면} 가니까 금방이야.",
                ),
            ),
        ),
        (
            (
                ("{nights:으로} 가는데 {dest} 숙소는 어디 쪽으로 잡는 게 좋아?",),
                ("{area} 근처 {lodging:이} 돌아다니기 편해. 1박에 {lodge_price} 정도야.",),
            ),
        ),
        (
            (
                ("{dest}에서 꼭 가 봐야 할 곳 하나만 추천해 줘. {companions}도 좋아할 만한 데로.",),
                ("{sight:은} 무조건 가 봐. {tip}.",),
            ),
        ),
        (
            (
                ("{dest} 가면 뭐 먹어야 돼? {companions:이랑} 맛집 투어 하려고.",),
                ("{dest}에 가면 {food:은} 꼭 먹어야지. {area} 쪽에 잘하는 집이 많은데 {wait}분은 줄 서야 돼.",),
            ),
        ),
        (
            (
                ("{companions:이랑} {nights:으로} {dest} 가면 경비는 얼마나 들까?",),
                ("교통비랑 숙박 합쳐서 1인당 {budget} 정도 잡으면 넉넉할 거야.",),
            ),
        ),
        (
            (
                ("{dest}에서 기념품은 뭐 사 오면 좋아? 예산은 {gift_budget} 정도야.",),
                ("{souvenir:을} 많이들 사 와. {gift_budget:이면} 회사 사람들한테 돌리기 충분해.",),
            ),
        ),
    ),
    closing=(
        (
            ("고마워, 덕분에 {dest} {nights} 일정 짜기가 훨씬 쉬워졌어.",),
            ("잘 다녀와! {companions:이랑} 먹은 {food} 사진 꼭 보내 줘.",),
        ),
        (
            ("{nights} 일정 끝나고 돌아오면 {souvenir} 하나 사다 줄게.",),
            ("오, {souvenir} 기대할게! {companions:이랑} 조심히 잘 다녀와.",),
        ),
    ),
)

# ---------------------------------------------------------------------------------- customer service


class _Product(NamedTuple):
    name: str
    price: int  # 원
    bulky: bool
    faults: tuple[tuple[str, str], ...]  # (symptom, what to try first)


_PRODUCTS = (
    _Product("무선 이어폰", 189000, False, (
        ("연결이 자꾸 끊겨요.", "휴대폰 블루투스 목록에서 이어폰을 삭제한 뒤에 다시 연결해 보시겠어요?"),
        ("한쪽에서만 소리가 나요.", "이어폰을 케이스에 넣고 뚜껑을 연 채로 버튼을 10초간 눌러 초기화해 보세요."),
    )),
    _Product("노트북", 1290000, False, (
        ("전원이 안 켜져요.", "충전기를 꽂은 상태에서 전원 버튼을 15초 정도 길게 눌러 보세요."),
        ("화면이 자꾸 깜빡거려요.", "그래픽 드라이버를 최신 버전으로 업데이트해 보세요."),
    )),
    _Product("세탁기", 890000, True, (
        ("탈수할 때 소음이 너무 심해요.", "세탁기가 수평으로 놓였는지 보시고 다리 높이를 맞춰 보세요."),
        ("물이 안 빠져요.", "세탁기 아래쪽 배수 필터를 열어서 이물질을 빼 주세요."),
    )),
    _Product("냉장고", 1450000, True, (
        ("냉동실에 성에가 너무 많이 껴요.", "문이 꽉 닫히는지 보시고 고무 패킹을 한번 닦아 주세요."),
        ("냉장실이 시원하지가 않아요.", "온도가 3도로 설정돼 있는지 보시고 뒤쪽 통풍구를 막은 물건을 치워 주세요."),
    )),
    _Product("공기청정기", 329000, False, (
        ("필터 교체 알림이 안 꺼져요.", "필터를 교체하신 뒤에 리셋 버튼을 3초간 눌러 주세요."),
        ("바람 세기가 안 바뀌어요.", "리모컨 건전지를 바꾸시고 본체 버튼으로도 한번 눌러 보세요."),
    )),
    _Product("스마트워치", 359000, False, (
        ("배터리가 반나절도 못 가요.", "항상 켜짐 화면 설정을 끄고 하루만 써 보시겠어요?"),
        ("심박수가 제대로 안 재져요.", "시계를 손목뼈 위로 조금 올려서 꽉 맞게 차 보세요."),
    )),
    _Product("로봇 청소기", 699000, False, (
        ("충전대로 못 돌아가요.", "충전대 앞 1미터 안에 있는 물건을 치우시고 센서를 닦아 주세요."),
        ("바퀴에서 덜그럭 소리가 나요.", "바퀴에 머리카락이 감겼는지 확인하시고 빼 주세요."),
    )),
    _Product("전기밥솥", 259000, False, (
        ("밥이 자꾸 설익어요.", "물을 눈금보다 조금 더 넣으시고 내솥 바닥을 마른 천으로 닦아 보세요."),
        ("뚜껑 틈으로 김이 새요.", "뚜껑 안쪽 고무 패킹을 빼서 씻은 뒤에 다시 끼워 주세요."),
    )),
    _Product("모니터", 279000, False, (
        ("화면에 세로줄이 생겼어요.", "케이블을 다른 포트에 꽂아 보시고 그래도 줄이 남는지 봐 주세요."),
        ("신호 없음만 떠요.", "본체 쪽 케이블이 끝까지 꽂혔는지 확인해 주세요."),
    )),
    _Product("블루투스 스피커", 149000, False, (
        ("충전이 안 돼요.", "다른 충전 케이블로 한번 연결해 보시겠어요?"),
        ("소리가 지직거려요.", "스피커를 휴대폰 가까이 두시고 펌웨어를 업데이트해 보세요."),
    )),
    _Product("에어컨", 1690000, True, (
        ("찬 바람이 안 나와요.", "필터를 빼서 물로 씻어 말린 뒤에 다시 끼워 보세요."),
        ("실내기에서 물이 떨어져요.", "배수 호스가 꺾이지 않았는지 확인해 주세요."),
    )),
    _Product("전자레인지", 159000, False, (
        ("돌아가는데 음식이 안 데워져요.", "전원을 뽑았다가 5분 뒤에 다시 꽂아 보시겠어요?"),
        ("버튼이 안 눌려요.", "잠금 버튼을 3초 동안 눌러서 잠금을 풀어 보세요."),
    )),
)  # fmt: skip
_RECENT = ("이틀 전", "사흘 전", "나흘 전", "지난 주말")
_EARLIER = ("지난달", "두 달 전", "석 달 전", "지난봄", "반년 전")


def _service_slots(rng: random.Random) -> dict[str, str]:
    product = rng.choice(_PRODUCTS)
    symptom, fix = rng.choice(product.faults)
    recent = rng.random() < 0.4
    slots = {
        "product": product.name, "symptom": symptom, "fix": fix,
        "purchase": rng.choice(_RECENT if recent else _EARLIER), "order": str(rng.randint(100000, 999999)),
        "price": f"{product.price:,}원", "refund_days": str(rng.randint(3, 7)),
        "visit_day": rng.choice(("내일", "모레", "이번 주 목요일", "이번 주 금요일", "다음 주 월요일")),
        "visit_time": _clock(rng, 9, 17), "pickup_day": rng.choice(("내일", "모레", "이번 주 금요일")),
        "ticket": f"{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}",
        "home": rng.choice(("평일 저녁", "오전", "오후", "주말", "점심때", "저녁 7시 이후")),
        "hours": rng.choice(("평일 오전 9시부터 오후 6시까지", "주말 포함 오전 9시부터 오후 8시까지")),
    }  # fmt: skip
    if recent:
        slots["exchange"] = _fill(
            "{purchase}에 받으셔서 아직 일주일이 안 됐으니 바로 새 {product:으로} 교환해 드릴게요.", slots
        )
        slots["refund"] = _fill(
            "네, 구매 후 7일이 안 지나서 환불 가능해요. {refund_days}일 안에 결제하신 카드로 {price:이} 취소돼요.",
            slots,
        )
    else:
        slots["exchange"] = _fill(
            "{purchase}에 사셔서 바로 교환은 어렵고, 점검에서 불량이 확인되면 새 제품으로 바꿔 드려요.", slots
        )
        slots["refund"] = _fill(
            "{purchase}에 구매하셔서 7일이 지나 바로 환불은 어렵고, {product} 점검 결과를 보고 안내할게요.",
            slots,
        )
    slots["pickup"] = _fill(
        "{product:은} 부피가 커서 택배는 어렵고 {visit_day} 기사님이 방문하셔서 점검해 드려요."
        if product.bulky
        else "네, 택배 기사님이 {pickup_day} {product} 회수하러 가실 거예요. 상자는 아무거나 쓰셔도 돼요.",
        slots,
    )
    return slots


_SERVICE = _Domain(
    name="customer_service",
    speakers=("고객", "상담원"),
    slots=_service_slots,
    opening=(
        (
            (
                "안녕하세요, {purchase}에 산 {product:이} {symptom}",
                "주문 번호 {order}번인데요, {purchase}에 받은 {product:이} {symptom}",
            ),
            (
                "불편을 드려 죄송합니다. {purchase}에 구매하신 {product} 건으로 접수 도와드릴게요.",
                "확인해 보니 {purchase}에 주문하신 {product} 맞으시네요. 바로 도와드릴게요.",
            ),
        ),
    ),
    topics=(
        (
            (
                (
                    "{product} 제가 집에서 직접 해 볼 수 있는 방법은 없을까요?",
                    "센터에 가기 전에 {product:을} 제가 먼저 손볼 방법이 있을까요?",
                ),
                ("{fix} 그래도 안 되면 다시 말씀해 주세요.", "네, 먼저 {fix}"),
            ),
        ),
        (
            (
                ("그건 이미 해 봤는데도 {symptom}", "설명서 보고 다 해 봤는데 {product:은} 여전히 {symptom}"),
                (
                    "그럼 {product} 자체 문제일 수 있어서 주문 번호 {order}번으로 방문 점검 접수해 드릴게요.",
                    "그렇다면 {product} 부품 문제일 수 있어요. {visit_day} 이후로 점검 일정을 잡아 드릴게요.",
                ),
            ),
        ),
        (
            (
                ("{product} 보러 기사님은 언제 오실 수 있어요? 저는 {home}에 집에 있어요.",),
                (
                    "가장 빠른 날이 {visit_day} {visit_time:이라} 그때로 잡아 드릴게요.",
                    "{visit_day} {visit_time}에 기사님 방문이 가능해서 그 시간으로 예약해 둘게요.",
                ),
            ),
        ),
        (
            (
                ("{product:은} {purchase}에 샀는데 수리비를 따로 내야 하나요?",),
                (
                    "{product:은} 보증 기간이 1년이라 {purchase}에 사셨으면 무상으로 처리돼요.",
                    "아니요, 아직 무상 보증 기간이라 {product} 수리비는 안 나와요.",
                ),
            ),
        ),
        (
            (("{purchase}에 산 건데 차라리 {product:을} 새 걸로 교환받고 싶어요.",), ("{exchange}",)),
            (("{purchase}에 {price} 주고 산 {product}인데 그냥 환불받을 수는 없을까요?",), ("{refund}",)),
        ),
        ((("{home}에만 집에 있어서요. {product:은} 택배로 보내도 되나요?",), ("{pickup}",)),),
        (
            (
                ("{product} 수리 진행 상황은 어디서 볼 수 있어요? 주문 번호는 {order}번이에요.",),
                ("접수 번호 {ticket}번으로 문자 드릴게요. 홈페이지에서 그 번호로 조회하시면 돼요.",),
            ),
        ),
    ),
    closing=(
        (
            ("네, 그럼 {visit_day} {visit_time}에 기다릴게요.",),
            ("네, {visit_day} {visit_time} 방문 30분 전에 기사님이 먼저 전화드릴 거예요.",),
        ),
        (
            ("{purchase}에 산 {product} 때문에 걱정했는데 친절하게 알려 주셔서 감사해요.",),
            ("{product} 문제로 불편을 드려 죄송합니다. 더 궁금하신 점은 {hours} 언제든 문의해 주세요.",),
        ),
    ),
)

# ------------------------------------------------------------------------------------------- school

_SUBJECTS = (  # subject, hard parts
    ("수학", ("미적분", "확률과 통계", "이차함수", "수열")),
    ("영어", ("관계대명사", "가정법", "분사구문")),
    ("국어", ("고전 시가", "문법", "비문학 독해")),
    ("과학", ("화학 반응식", "전기 회로", "세포 분열")),
    ("한국사", ("조선 후기", "근현대사", "고려 시대")),
    ("물리", ("운동량", "전자기 유도")),
    ("화학", ("몰 계산", "산화 환원")),
    ("생명과학", ("유전", "항상성")),
    ("경제", ("수요와 공급", "환율")),
    ("사회문화", ("사회 계층", "문화 변동")),
)
_STUDY_PLACES = ("도서관", "스터디 카페", "학교 자습실", "우리 집", "동네 카페", "독서실")
_CLUBS = ("밴드부", "축구부", "방송부", "연극부", "사진 동아리", "코딩 동아리", "댄스 동아리", "합창부")
_TREATS = ("떡볶이", "마라탕", "삼겹살", "치킨", "피자", "라면", "햄버거", "빙수")


def _school_slots(rng: random.Random) -> dict[str, str]:
    subject, hard_parts = rng.choice(_SUBJECTS)
    first = rng.randint(1, 3)
    return {
        "subject": subject, "hard": rng.choice(hard_parts),
        "exam": rng.choice(("중간고사", "기말고사", "모의고사", "쪽지 시험", "수행평가")),
        "exam_day": rng.choice(("다음 주 월요일", "다음 주 화요일", "이번 주 목요일", "다음 주 수요일")),
        "chapters": f"{first}단원부터 {first + rng.randint(2, 4)}단원",
        "teacher": f"{_surname(rng)} 선생님",
        "focus": rng.choice(("교과서 예제", "수업 시간 프린트", "단원 끝 문제", "칠판에 쓴 내용", "작년 기출문제")),
        "task": rng.choice(("보고서", "발표 자료", "조별 과제", "독후감", "탐구 보고서")),
        "due": rng.choice(("이번 주 금요일", "다음 주 월요일", "다음 주 수요일", "모레", "내일 아침")),
        "pages": str(rng.randint(2, 6)), "place": rng.choice(_STUDY_PLACES),
        "day": rng.choice(("오늘 방과 후", "내일", "토요일", "일요일", "이번 주말")), "time": _clock(rng, 13, 20),
        "club": rng.choice(_CLUBS), "club_day": rng.choice(("다음 주 월요일", "시험 끝난 다음 날", "다음 주 수요일")),
        "score": str(rng.randint(55, 100)), "treat": rng.choice(_TREATS),
    }  # fmt: skip


_SCHOOL = _Domain(
    name="school",
    speakers=("A", "B"),
    slots=_school_slots,
    opening=(
        (
            ("너 {subject} {exam} 공부 다 했어?", "{subject} {exam} 준비 잘 돼 가?"),
            ("아니, 아직 {chapters}까지 중에 반도 못 봤어.", "아직 멀었어. {hard} 부분이 진짜 안 외워져."),
        ),
        (
            ("{exam} {exam_day}부터 시작이지?",),
            (
                "응, 첫날이 {subject:이라서} 벌써 떨려. {hard} 부분은 아직 못 봤는데.",
                "맞아. {subject:은} 둘째 날이라 {hard} 볼 시간은 있어.",
            ),
        ),
    ),
    topics=(
        (
            (
                ("{subject} {exam} 범위가 어디까지야?",),
                ("{chapters}까지래. {teacher:이} {focus:은} 꼭 보라고 하셨어.",),
            ),
        ),
        (
            (
                ("{day} {place}에서 같이 {subject} 공부할래?",),
                ("좋아, {time}에 {place} 앞에서 만나자. 내가 {subject} 필기 가져갈게.",),
            ),
        ),
        (
            (
                ("{subject} {task:은} 언제까지였지?",),
                (
                    "{due}까지야. 분량은 A4 {pages}장 이상이래.",
                    "{due}까지 내면 돼. {teacher:이} 늦으면 감점이라고 하셨어.",
                ),
            ),
        ),
        (
            (
                ("{exam} 앞두고 {subject} {hard} 부분 보는데 너무 어려워.",),
                (
                    "{hard:은} 나도 헷갈렸는데 {teacher} 수업 영상 다시 보니까 좀 이해되더라.",
                    "{hard:은} 문제를 많이 풀어 보는 수밖에 없어. 내 {subject} 문제집 빌려줄게.",
                ),
            ),
        ),
        ((("지난번 {subject} {exam} 몇 점 나왔어?",), ("{score}점. {hard}에서 두 문제 틀렸어.",)),),
        (
            (
                ("{exam} 끝나면 {club} 연습 다시 시작하지?",),
                ("응, {club:은} {club_day}부터 다시 모인대. 축제 준비 때문에 바빠질 거야.",),
            ),
        ),
    ),
    closing=(
        (
            ("고마워, 덕분에 {hard} 부분은 좀 할 만하겠다.", "고마워, 오늘 {place}에서 {hard}부터 다시 봐야겠다."),
            ("우리 {exam} 끝나면 {treat} 먹으러 가자.",),
        ),
        (
            ("그럼 {day} {time}에 {place}에서 봐.",),
            ("응, 늦으면 {place}에서 {subject} 프린트 먼저 보고 있을게.",),
        ),
    ),
)

# --------------------------------------------------------------------------------------------- work

_PROJECTS = ("신규 앱 리뉴얼", "하반기 마케팅 캠페인", "고객 데이터 분석", "사내 교육 프로그램", "물류 시스템 개편",
             "해외 전시회 준비", "신제품 출시", "홈페이지 개편", "내년 예산 수립", "협력사 계약 갱신")  # fmt: skip
_TITLES = ("팀장님", "과장님", "부장님", "차장님", "실장님", "대리님")
_DOCS = ("보고서", "발표 자료", "회의록", "예산안", "기획서", "견적서", "결과 보고서", "제안서")
_CLIENTS = ("한빛상사", "새솔물산", "푸른솔테크", "다온푸드", "미래로직스", "나래전자", "가온건설", "별빛제약")


def _work_slots(rng: random.Random) -> dict[str, str]:
    return {
        "project": rng.choice(_PROJECTS), "colleague": f"{_surname(rng)} {rng.choice(_TITLES)}",
        "doc": rng.choice(_DOCS), "client": rng.choice(_CLIENTS),
        "room": rng.choice(("3층 회의실", "대회의실", "소회의실", "7층 회의실", "2번 회의실")),
        "meeting_day": rng.choice(("내일", "모레", "이번 주 목요일", "다음 주 월요일")),
        "meeting_time": _clock(rng, 9, 17),
        "deadline": rng.choice(("이번 주 금요일", "다음 주 수요일", "이번 달 말", "내일 오전", "다음 주 월요일")),
        "data": rng.choice(("매출", "설문 조사", "고객 문의", "예산 집행", "사용자 로그", "재고")),
        "leave_day": rng.choice(("다음 주 금요일", "이번 달 말", "다음 주 월요일", "다음 달 초")),
        "weekday": rng.choice(("월요일", "화요일", "수요일", "금요일")),
        "lunch": rng.choice(("쌀국수집", "돈가스집", "국밥집", "샐러드 가게", "백반집", "칼국수집", "초밥집")),
        "lunch_time": rng.choice(("12시", "12시 반", "1시")),
        "stay_until": rng.choice(("8시", "9시", "10시", "8시 반")),
    }  # fmt: skip


_WORK = _Domain(
    name="work",
    speakers=("A", "B"),
    slots=_work_slots,
    opening=(
        (
            (
                "{colleague}께서 물어보시던데 {project} 건 진행 상황은 어때요?",
                "{project} 쪽 {doc:은} 좀 어떻게 돼 가요?",
            ),
            (
                "{doc} 초안은 거의 끝났고 {colleague} 검토만 남았어요.",
                "생각보다 순조로워요. {deadline}까지 {doc}만 마무리하면 돼요.",
            ),
        ),
        (
            ("오늘 {colleague}께서 {project} 얘기하시던데 들으셨어요?",),
            ("네, {deadline}까지 {doc:을} 올려 달라고 하셨어요.",),
        ),
    ),
    topics=(
        (
            (
                ("{client} 오는 {project} 회의가 몇 시였죠?", "{meeting_day} {project} 회의는 어디서 해요?"),
                ("{meeting_day} {meeting_time}에 {room}에서 해요. {client} 담당자도 온대요.",),
            ),
        ),
        (
            (
                ("{project} {doc} 마감이 언제까지예요?",),
                ("{deadline}까지인데 {colleague:이} 하루 전에 먼저 보고 싶다고 하셨어요.",),
            ),
        ),
        (
            (
                ("{doc}에 넣을 {data} 자료 좀 공유해 줄 수 있어요?",),
                (
                    "네, {data} 자료는 공유 폴더의 {project} 폴더에 올려 둘게요. 숫자만 한 번 확인해 주세요.",
                    "지금 바로 메일로 보낼게요. {data} 자료는 {client} 건이랑 섞여 있으니까 잘 보세요.",
                ),
            ),
        ),
        (
            (
                ("오늘도 야근해야 할 것 같아요. {colleague}께서 {doc} 고칠 게 많다고 하셔서요.",),
                ("저도 {client} 견적 때문에 {stay_until}까지 있을 거예요. 저녁 같이 시켜 먹어요.",),
            ),
        ),
        (
            (
                ("저 {leave_day}에 연차 쓰려고 하는데 {project} 일정에 지장 없을까요?",),
                ("{leave_day:이면} 회의도 없어서 괜찮을 거예요. {colleague}께 미리 말씀만 드리세요.",),
            ),
        ),
        (
            (
                ("{weekday}에는 재택근무 하세요? {project} 회의가 잡혀서요.",),
                ("네, {weekday:은} 재택이라 {project} 회의는 화상으로 들어갈게요.",),
            ),
        ),
        (
            (
                ("{meeting_day} 점심은 {lunch} 어때요? 회사 앞에 새로 생겼던데.",),
                ("{lunch} 좋죠. {lunch_time}쯤 {colleague}도 모시고 같이 가요.",),
            ),
        ),
    ),
    closing=(
        (
            ("그럼 {project} {doc} 정리되면 바로 공유할게요.",),
            ("네, 수고하세요. {deadline}까지 {doc} 같이 힘내서 끝내요.",),
        ),
        (
            ("고마워요. {colleague}께는 제가 말씀드릴게요.",),
            ("네, 부탁드려요. 저는 {client} 쪽에 {doc} 메일로 보내 둘게요.",),
        ),
    ),
)


# (what is being chosen, how the reply may name it again)
_ADVICE_THINGS = (
    ("차", "자동차"), ("자동차", "차"), ("중고차", "중고차"), ("전기차", "전기차"), ("집", "집"), ("노트북", "노트북"),
    ("휴대폰", "스마트폰"), ("보험", "보험"),
    ("전공", "대학 전공"), ("회사", "직장"), ("냉장고", "냉장고"), ("카메라", "카메라"), ("자전거", "자전거"),
    ("세탁기", "세탁기"), ("침대", "침대"), ("학원", "학원"), ("유모차", "유모차"),
)  # fmt: skip
_ADVICE_POINTS = ("가격", "후기", "평판", "만족도", "품질")


def _advice_slots(rng: random.Random) -> dict[str, str]:
    thing, alias = rng.choice(_ADVICE_THINGS)
    point, other = rng.sample(_ADVICE_POINTS, 2)
    return {
        "thing": thing, "alias": alias, "point": point, "other": other,
        "years": rng.choice(("몇 년씩", "오래", "5년 넘게", "꽤 오랫동안", "한참")),
        "budget": _manwon(rng.randrange(50, 3001, 50)),
    }  # fmt: skip


_ADVICE = _Domain(
    name="advice",
    speakers=("상담원", "손님"),
    slots=_advice_slots,
    opening=(
        (
            (
                "무엇을 도와드릴까요?",
                "어떤 고민으로 오셨어요?",
                "오늘은 어떤 상담이 필요하세요?",
                "어떤 점이 고민이신가요?",
                "무엇이 궁금하신가요?",
            ),
            (
                "{thing:을} 사려는데 뭘 골라야 할지 막막해요.",
                "{thing} 때문에 고민이 많아요. 어떤 게 좋을지 모르겠어요.",
                "이번에 {thing:을} 정해야 하는데 도무지 감이 안 와요.",
                "{thing:을} 어떻게 골라야 할지 잘 모르겠습니다.",
                "어떤 {thing:이} 저한테 맞을지 판단이 안 섭니다.",
            ),
        ),
    ),
    topics=(
        (
            (
                (
                    "{thing:은} 한 번 정하면 {years} 쓰니까 신중하게 고르셔야 해요.",
                    "{thing:은} {years} 쓰게 되니까 꼼꼼하게 비교해 보셔야 해요.",
                    "{thing:은} {years} 쓰시게 되니 신중하게 고르셔야 합니다.",
                    "{thing:은} 한 번 고르면 바꾸기 어려워서, 천천히 비교해 보셔야 합니다.",
                ),
                (
                    "{alias:은} 신중하게 골라야겠네요.",
                    "역시 {alias:은} 꼼꼼히 따져 보고 골라야겠어요.",
                    "{alias:은} 오래 쓰니까 잘 골라야겠네요.",
                    "말씀대로 {alias:은} 신중히 고르겠습니다.",
                    "{alias:은} 정말 신중하게 결정해야겠습니다.",
                ),
            ),
        ),
        (
            (
                ("{thing}에 쓸 예산은 어느 정도 생각하세요?", "예산은 얼마 정도로 잡고 계신가요?"),
                ("{budget} 정도까지는 괜찮을 것 같아요.", "많아야 {budget} 정도입니다."),
            ),
        ),
        (
            (
                (
                    "{thing:을} 고를 때 제일 중요하게 보시는 게 뭐예요?",
                    "{thing}에서 가장 중요하게 보시는 점은 무엇인가요?",
                ),
                ("저는 {point:이} 제일 중요해요.", "{other}보다는 {point:이} 더 중요합니다."),
            ),
        ),
        (
            (
                ("{point:을} 중요하게 보시면 후보를 두세 개로 좁혀서 직접 비교해 보세요.",),
                (
                    "{point} 위주로 {alias} 후보를 추려 볼게요.",
                    "알겠습니다. {point:을} 기준으로 {alias:을} 비교해 보겠습니다.",
                ),
            ),
        ),
    ),
    closing=(
        (
            ("더 궁금한 게 생기면 언제든 다시 물어보세요.", "다른 궁금한 점이 있으시면 언제든 말씀해 주세요."),
            ("감사합니다. {thing} 고르는 데 많은 도움이 됐어요.", "친절하게 알려 주셔서 감사합니다."),
        ),
    ),
)

# --------------------------------------------------------------------------------------------------

_ALL_DOMAINS = (_CAR, _TEA, _WEATHER, _FOOD, _SPORTS, _TRAVEL, _SERVICE, _SCHOOL, _WORK, _ADVICE)
DOMAINS: tuple[str, ...] = tuple(domain.name for domain in _ALL_DOMAINS)
MIN_TURNS, MAX_TURNS = 4, 12

# The original ko-mrs README's ranking example, verbatim. "차" (car / tea) is the trap: two wrong candidates share
# it with the context. None of these sentences is in the generated corpus (tests/test_demo_corpus.py checks), so
# the demo model ranks them by what it learned, not by having seen them.
README_EXAMPLE: dict[str, Any] = {
    "context": [
        "어떤 문제가 있으신가요?",
        "어떤 차를 사야 할지 잘 모르겠어요.",
        "차는 한 번 사면 10년도 넘게 써서, 신중하게 골라야 해요.",
    ],
    "candidates": [
        "저 좀 도와주실 수 있나요?",
        "저는 농구를 좋아합니다.",
        "자동차는 신중히 골라야합니다.",
        "저는 차 마시는거를 좋아합니다.",
        "날씨가 화창합니다.",
        "저는 차를 좋아합니다.",
    ],
    "answer": 2,
}


def _dialogue(domain: _Domain, rng: random.Random) -> tuple[list[str], list[str]]:
    """Opening + an ordered subset of topics + closing, cut to a length drawn from 4..12 turns."""
    turns = rng.randint(MIN_TURNS, MAX_TURNS)
    n_topics = (turns - 4) // 2 if turns % 2 == 0 else (turns - 3) // 2  # odd: the closing reply is cut
    slots = domain.slots(rng)
    chosen = sorted(rng.sample(range(len(domain.topics)), n_topics))
    exchanges = [
        rng.choice(domain.opening),
        *(rng.choice(domain.topics[i]) for i in chosen),
        rng.choice(domain.closing),
    ]
    utterances = [_fill(rng.choice(variants), slots) for exchange in exchanges for variants in exchange][:turns]
    speakers = [domain.speakers[i % 2] for i in range(len(utterances))]
    return utterances, speakers


def generate_dialogues(n_dialogues: int = 480, seed: int = 0) -> list[dict[str, Any]]:
    """Deterministic from the seed (its own random.Random), domains in turn so each gets an equal share."""
    if n_dialogues < 0:
        raise ValueError(f"n_dialogues must be >= 0, got {n_dialogues}")
    rng = random.Random(seed)
    counts = dict.fromkeys(DOMAINS, 0)
    dialogues = []
    for index in range(n_dialogues):
        domain = _ALL_DOMAINS[index % len(_ALL_DOMAINS)]
        utterances, speakers = _dialogue(domain, rng)
        dialogues.append(
            {
                "id": f"demo-{domain.name}-{counts[domain.name]:04d}",
                "utterances": utterances,
                "speakers": speakers,
                "domain": domain.name,
            }
        )
        counts[domain.name] += 1
    return dialogues


def write_demo_corpus(
    out_dir: str | os.PathLike[str],
    n_dialogues: int = 480,
    seed: int = 0,
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
) -> dict[str, Path]:
    """Write train/validation/test JSONL, split by dialogue id so no dialogue lands in two splits."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for dialogue in generate_dialogues(n_dialogues, seed):
        records[assign_split(dialogue["id"], seed, ratios)].append(dialogue)
    return {split: write_jsonl(records[split], out / f"{split}.jsonl") for split in SPLITS}


def main(argv: Sequence[str] | None = None) -> int:
    """CLI: write the corpus and print what each split holds, so a run shows what it produced."""
    parser = argparse.ArgumentParser(
        description="Write the synthetic Korean demo corpus (train/validation/test JSONL)."
    )
    parser.add_argument("--out", required=True, help="output folder, e.g. data/demo")
    parser.add_argument("--n-dialogues", type=int, default=480)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_demo_corpus(args.out, n_dialogues=args.n_dialogues, seed=args.seed)
    for split, path in paths.items():
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        n_utterances = sum(len(record["utterances"]) for record in records)
        print(f"{split:10s} {len(records):5d} dialogues {n_utterances:6d} utterances -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
