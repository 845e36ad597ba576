"""A synthetic Korean dialogue corpus for the demo and the tests, generated from a seed.

This corpus is synthetic: the project writes it itself from templates and slot fillers (``demo_templates.yaml``,
data beside this generator: the exchanges of each domain and the slot tables); it is not
third-party data and falls under the project's own licence. It exists so that the whole
pipeline (data layer, tokenizer, post-training, fine-tuning, ranking) can run offline anywhere. It
checks that the pipeline works, not how good a model is: use real data for quality numbers.

Ten everyday domains share the dialogues about equally. Car buying and tea/coffee both use the word
"차" (car / tea), so a model has to read the context rather than match one word. Every reply names the
slot values of its own dialogue (model, tea, city, dish, team...), so a retrieval model or BM25 can
in principle tell the true next utterance from utterances of other dialogues.

    mrs-demo-corpus --out data/demo [--n-dialogues 480] [--seed 0]
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
from types import SimpleNamespace
from typing import Any, NamedTuple

import yaml

from ko_mrs.dialogue_data import SPLITS, assign_split, write_jsonl

# The templates and slot tables: data, beside this generator.
TEMPLATES = Path(__file__).with_name("demo_templates.yaml")

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


def _car_slots(rng: random.Random) -> dict[str, str]:
    model, kind, price, electric, boot = rng.choice(_V.cars)
    purpose, why, cargo = rng.choice(_V.car_needs)
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
        "discount": _manwon(rng.randrange(50, 301, 50)), "trim": rng.choice(_V.trims),
        "colour": rng.choice(_V.colours), "weeks": str(rng.randint(2, 12)),
        "months": str(months), "monthly": _manwon(round(price * 1.06 / months)),
        "old_years": str(old_years), "trade": _manwon(max(150, 1500 - 90 * old_years + rng.randrange(0, 300, 50))),
        "day": rng.choice(_V.days), "time": _clock(rng, 10, 18),
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------- tea


class _Tea(NamedTuple):
    name: str
    water: int  # °C
    minutes: int
    taste: str
    caffeine: bool


def _tea_slots(rng: random.Random) -> dict[str, str]:
    tea = rng.choice(_V.teas)
    origin, flavour = rng.choice(_V.beans)
    caffeine = (
        "카페인이 커피보다 훨씬 적어서 오후에 한두 잔은 괜찮아"
        if tea.caffeine
        else "카페인이 거의 없어서 자기 전에 마셔도 괜찮아"
    )
    return {
        "tea": tea.name, "temp": str(tea.water), "minutes": str(tea.minutes), "taste": tea.taste,
        "caffeine": caffeine, "coffee": rng.choice(_V.coffees), "cups": rng.choice(_V.cups),
        "origin": origin, "flavour": flavour, "area": rng.choice(_V.areas), "cafe": rng.choice(_V.teahouses),
        "price": f"{rng.randrange(6000, 9501, 500):,}원", "pot_price": f"{rng.randrange(12, 31) * 1000:,}원",
        "whom": rng.choice(_V.elders), "day": rng.choice(("토요일", "일요일", "금요일", "수요일")),
        "time": _clock(rng, 11, 17), "vessel": rng.choice(_V.vessels), "pairing": rng.choice(_V.pairings),
    }  # fmt: skip


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


def _degrees(value: int) -> str:
    return f"영하 {-value}" if value < 0 else str(value)


def _weather_slots(rng: random.Random) -> dict[str, str]:
    weather, other = rng.sample(_V.weathers, 2)
    city, city2 = rng.sample(_V.cities, 2)
    day, alt_day = rng.sample(_V.weather_days, 2)
    low, high = rng.randint(*weather.low), rng.randint(*weather.high)
    slots = {
        "city": city, "city2": city2, "day": day, "alt_day": alt_day, "plan": rng.choice(_V.outings),
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


# --------------------------------------------------------------------------------------------- food


class _Dish(NamedTuple):
    name: str
    ingredients: str
    side: str
    price: int  # 원
    kcal: int
    spicy: bool


def _food_slots(rng: random.Random) -> dict[str, str]:
    dish, previous = rng.sample(_V.dishes, 2)
    meal = rng.choice(("점심", "저녁"))
    hour = (
        rng.choice(("12시", "12시 반", "1시", "11시 반"))
        if meal == "점심"
        else rng.choice(("6시", "6시 반", "7시", "7시 반", "8시"))
    )
    slots = {
        "dish": dish.name, "ingredients": dish.ingredients, "side": dish.side,
        "price": f"{dish.price + rng.choice((0, 500, 1000)):,}원", "kcal": str(dish.kcal + rng.randrange(-50, 51, 10)),
        "meal": meal, "time": hour, "wait": str(rng.randrange(10, 41, 5)), "area": rng.choice(_V.food_areas),
        "restaurant": f"{rng.choice(_V.shop_prefixes)} {dish.name}집", "dessert": rng.choice(_V.desserts),
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


# ------------------------------------------------------------------------------------------- sports


def _sports_slots(rng: random.Random) -> dict[str, str]:
    if rng.random() < 0.6:
        team, team2 = rng.sample(_V.baseball_teams, 2)
        stadium = rng.choice(("잠실", "사직", "고척", "문학", "창원", "수원", "대전", "광주", "대구")) + " 야구장"
        won, pred = rng.randint(3, 12), f"{rng.randint(3, 8)}대 {rng.randint(0, 2)}"
        clutch = rng.choice(("9회 말 끝내기 안타", "8회에 나온 역전 홈런", "마지막 병살 수비", "7회 만루 홈런"))
        stat = rng.choice((f"홈런을 {rng.randint(12, 35)}개나 쳤어", f"타율이 3할 {rng.randint(1, 9)}푼이야"))
        seat = rng.choice(("1루 응원석", "3루 내야석", "외야 자유석", "중앙 테이블석"))
        food = rng.choice(("치킨이랑 맥주", "떡볶이", "곱창", "핫도그", "삼겹살 도시락"))
        rank = "{rank}위인데 {team2:이랑} {gap}경기 차이라 가을 야구도 노려볼 만해"
        gap = f"{rng.randint(0, 5)}.5"
    else:
        team, team2 = rng.sample(_V.football_teams, 2)
        stadium = rng.choice(("상암", "전주", "수원", "포항", "인천", "제주", "대전", "울산")) + " 경기장"
        won, pred = rng.randint(1, 4), f"{rng.randint(1, 3)}대 0"
        clutch = rng.choice(("후반 추가 시간 결승골", "막판 프리킥 골", "골키퍼 선방", "후반 역전골"))
        stat = rng.choice((f"벌써 {rng.randint(6, 20)}골이나 넣었어", f"도움만 {rng.randint(5, 14)}개야"))
        seat = rng.choice(("N석 응원석", "E석 2층", "W석 중앙", "S석"))
        food = rng.choice(("치킨이랑 맥주", "핫도그", "닭강정", "어묵", "김밥"))
        rank = "{rank}위인데 {team2:이랑} 승점 {gap}점 차이라 순위 싸움이 치열해"
        gap = str(rng.randint(1, 9))
    exercise, exercise2 = rng.sample(_V.exercises, 2)
    slots = {
        "team": team, "team2": team2, "stadium": stadium, "clutch": clutch, "stat": stat, "seat": seat,
        "food": food, "player": rng.choice(_V.players), "rank": str(rng.randint(1, 6)), "gap": gap,
        "score": f"{won}대 {rng.randint(0, won - 1)}", "pred": pred,
        "day": rng.choice(("토요일", "일요일", "금요일", "수요일")),
        "open_day": rng.choice(("월요일", "화요일", "수요일", "목요일")),
        "exercise": exercise, "exercise2": exercise2, "freq": str(rng.randint(2, 5)), "weeks": str(rng.randint(2, 10)),
    }  # fmt: skip
    slots["rank_text"] = _fill(rank, slots)
    return slots


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


def _travel_slots(rng: random.Random) -> dict[str, str]:
    place = rng.choice(_V.places)
    nights = rng.randint(1, 4)
    budget = rng.randrange(70, 181, 10) if place.abroad else rng.randrange(20, 61, 5)
    return {
        "dest": place.name, "transport": place.transport, "travel_time": place.travel_time, "area": place.area,
        "sight": place.sight, "food": place.food, "souvenir": place.souvenir,
        "season": rng.choice(("봄", "여름", "가을", "겨울", "연휴", "방학")), "companions": rng.choice(_V.companions),
        "nights": f"{nights}박 {nights + 1}일", "lodging": rng.choice(_V.lodgings),
        "lodge_price": _manwon(rng.randint(6, 25)), "budget": _manwon(budget), "tip": rng.choice(_V.tips),
        "prev_year": str(rng.randint(2016, 2024)), "wait": str(rng.randrange(10, 61, 10)),
        "gift_budget": _manwon(rng.randint(3, 10)),
    }  # fmt: skip


# ---------------------------------------------------------------------------------- customer service


class _Product(NamedTuple):
    name: str
    price: int  # 원
    bulky: bool
    faults: tuple[tuple[str, str], ...]  # (symptom, what to try first)


def _service_slots(rng: random.Random) -> dict[str, str]:
    product = rng.choice(_V.products)
    symptom, fix = rng.choice(product.faults)
    recent = rng.random() < 0.4
    slots = {
        "product": product.name, "symptom": symptom, "fix": fix,
        "purchase": rng.choice(_V.recent if recent else _V.earlier), "order": str(rng.randint(100000, 999999)),
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


# ------------------------------------------------------------------------------------------- school


def _school_slots(rng: random.Random) -> dict[str, str]:
    subject, hard_parts = rng.choice(_V.subjects)
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
        "pages": str(rng.randint(2, 6)), "place": rng.choice(_V.study_places),
        "day": rng.choice(("오늘 방과 후", "내일", "토요일", "일요일", "이번 주말")), "time": _clock(rng, 13, 20),
        "club": rng.choice(_V.clubs), "club_day": rng.choice(("다음 주 월요일", "시험 끝난 다음 날", "다음 주 수요일")),
        "score": str(rng.randint(55, 100)), "treat": rng.choice(_V.treats),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------- work


def _work_slots(rng: random.Random) -> dict[str, str]:
    return {
        "project": rng.choice(_V.projects), "colleague": f"{_surname(rng)} {rng.choice(_V.titles)}",
        "doc": rng.choice(_V.docs), "client": rng.choice(_V.clients),
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


def _advice_slots(rng: random.Random) -> dict[str, str]:
    thing, alias = rng.choice(_V.advice_things)
    point, other = rng.sample(_V.advice_points, 2)
    return {
        "thing": thing, "alias": alias, "point": point, "other": other,
        "years": rng.choice(("몇 년씩", "오래", "5년 넘게", "꽤 오랫동안", "한참")),
        "budget": _manwon(rng.randrange(50, 3001, 50)),
    }  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Loading the templates
# --------------------------------------------------------------------------------------------------


def _tuples(value: Any) -> Any:
    """YAML lists as tuples, as the generator has always drawn from (``rng.choice`` and ``rng.sample`` alike)."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def _load_templates(path: Path) -> tuple[SimpleNamespace, tuple[_Domain, ...]]:
    """The slot tables and the domains of ``demo_templates.yaml``; a table of named rows becomes those rows."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    rows = {"teas": _Tea, "weathers": _Weather, "dishes": _Dish, "places": _Place, "products": _Product}
    values = {name: _tuples(table) for name, table in data["values"].items()}
    for name, row in rows.items():
        values[name] = tuple(row(*values_row) for values_row in values[name])
    slot_functions = {function.__name__: function for function in _SLOT_FUNCTIONS}
    domains = tuple(
        _Domain(
            name=name,
            speakers=_tuples(spec["speakers"]),
            slots=slot_functions[spec["slots"]],
            opening=_tuples(spec["opening"]),
            topics=_tuples(spec["topics"]),
            closing=_tuples(spec["closing"]),
        )
        for name, spec in data["domains"].items()
    )
    return SimpleNamespace(**values), domains


_SLOT_FUNCTIONS = (
    _car_slots, _tea_slots, _weather_slots, _food_slots, _sports_slots, _travel_slots, _service_slots,
    _school_slots, _work_slots, _advice_slots,
)  # fmt: skip
_V, _ALL_DOMAINS = _load_templates(TEMPLATES)
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


# --------------------------------------------------------------------------------------------------
# Multi-party dialogues: two conversations of different domains in one room, their turns interleaved.
# --------------------------------------------------------------------------------------------------

MULTIPARTY_THREAD_TURNS = (3, 6)  # turns kept of each thread's two-party dialogue


def _multiparty_dialogue(rng: random.Random) -> tuple[list[str], list[str], list[int]]:
    """Two threads (two-party dialogues of two domains) interleaved at random, so a turn often answers someone
    other than the last speaker. Four speakers, or three when one person is in both threads.

    Returns the utterances, their speakers and each turn's thread (0 or 1).
    """
    domains = rng.sample(_ALL_DOMAINS, 2)
    threads = [_dialogue(domain, rng)[0][: rng.randint(*MULTIPARTY_THREAD_TURNS)] for domain in domains]
    a, b, c, d = rng.sample(_V.party_names, 4)
    pairs = [(a, b), (c, a) if rng.random() < 0.5 else (c, d)]
    left = [len(t) for t in threads]
    utterances, speakers, thread_of = [], [], []
    turn = [0, 0]
    while any(left):
        if turn[0] == 0 or not left[1]:
            k = 0  # thread 0 opens the room
        elif not left[0]:
            k = 1
        else:
            k = rng.randrange(2)
        utterances.append(threads[k][turn[k]])
        speakers.append(pairs[k][turn[k] % 2])
        thread_of.append(k)
        turn[k] += 1
        left[k] -= 1
    return utterances, speakers, thread_of


def generate_multiparty_dialogues(n_dialogues: int = 600, seed: int = 0) -> list[dict[str, Any]]:
    """Deterministic from the seed; each record also names its ``domains`` and each turn's ``threads``."""
    if n_dialogues < 0:
        raise ValueError(f"n_dialogues must be >= 0, got {n_dialogues}")
    rng = random.Random(seed)
    dialogues = []
    for index in range(n_dialogues):
        utterances, speakers, threads = _multiparty_dialogue(rng)
        dialogues.append(
            {"id": f"demo-multiparty-{index:04d}", "utterances": utterances, "speakers": speakers, "threads": threads}
        )
    return dialogues


def build_multiparty_groups(
    dialogues: Sequence[dict[str, Any]], num_candidates: int = 10, seed: int = 0
) -> list[dict[str, Any]]:
    """One group per dialogue that has a turn where the speaker switches threads and the other thread goes on.

    The reply at such a turn ``t`` answers someone other than the last speaker, and its speaker has spoken
    before (without that, even the speakers could not tell which thread the reply continues). Its negatives: the
    other thread's next turn (``wrong_speaker_candidate``: the right content for the last turn, said by someone
    other than the reply's speaker) and random utterances of other dialogues. Groups carry ``speakers`` and
    ``reply_speaker``.
    """
    rng = random.Random(seed)
    pool = [(d, u) for d, dialogue in enumerate(dialogues) for u in dialogue["utterances"]]
    groups = []
    for d, dialogue in enumerate(dialogues):
        threads, speakers, turns = dialogue["threads"], dialogue["speakers"], dialogue["utterances"]
        eligible = []
        for t in range(1, len(turns)):
            other = next((j for j in range(t + 1, len(turns)) if threads[j] == threads[t - 1]), None)
            # the reply's speaker has spoken before: who they talk with can be told from the context
            if threads[t] == threads[t - 1] or other is None or speakers[t] not in speakers[:t]:
                continue
            if speakers[other] != speakers[t] and turns[other] != turns[t]:
                eligible.append((t, other))
        if not eligible:
            continue
        t, other = rng.choice(eligible)
        candidates = [turns[t], turns[other]]
        while len(candidates) < num_candidates:
            source, text = rng.choice(pool)
            if source != d and text not in candidates:
                candidates.append(text)
        order = list(range(num_candidates))
        rng.shuffle(order)
        groups.append(
            {
                "group_id": f"{dialogue['id']}@{t}",
                "context": turns[:t],
                "candidates": [candidates[i] for i in order],
                "labels": [int(i == 0) for i in order],
                "speakers": speakers[:t],
                "reply_speaker": speakers[t],
                "wrong_speaker_candidate": order.index(1),
                "corpus": "multiparty",
            }
        )
    return groups


def write_multiparty_corpus(
    out_dir: str | os.PathLike[str], n_dialogues: int = 600, seed: int = 0, num_candidates: int = 10
) -> dict[str, Path]:
    """Train/validation/test JSONL of multi-party dialogues, plus ``validation_groups`` / ``test_groups``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    records: dict[str, list[dict]] = {split: [] for split in SPLITS}
    for dialogue in generate_multiparty_dialogues(n_dialogues, seed):
        records[assign_split(dialogue["id"], seed)].append(dialogue)
    paths = {split: write_jsonl(records[split], out / f"{split}.jsonl") for split in SPLITS}
    for split in ("validation", "test"):
        groups = build_multiparty_groups(records[split], num_candidates, seed)
        paths[f"{split}_groups"] = write_jsonl(groups, out / f"{split}_groups.jsonl")
    return paths


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
    parser.add_argument(
        "--multi-party",
        action="store_true",
        help="write multi-party dialogues (3-4 speakers, two interleaved threads) and their test groups instead",
    )
    args = parser.parse_args(argv)
    if args.multi_party:
        paths = write_multiparty_corpus(args.out, n_dialogues=args.n_dialogues, seed=args.seed)
    else:
        paths = write_demo_corpus(args.out, n_dialogues=args.n_dialogues, seed=args.seed)
    for split, path in paths.items():
        with path.open(encoding="utf-8") as handle:
            records = [json.loads(line) for line in handle]
        if split.endswith("_groups"):
            print(f"{split:17s} {len(records):5d} groups -> {path}")
            continue
        n_utterances = sum(len(record["utterances"]) for record in records)
        print(f"{split:17s} {len(records):5d} dialogues {n_utterances:6d} utterances -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
