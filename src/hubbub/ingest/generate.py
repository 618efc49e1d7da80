"""A synthetic Bluesky Jetstream (v1 JSON) firehose for tests, demos and benchmarks.

The stream mimics production traffic: the mix of collections and operations, Zipf-shaped
page popularity, multilingual text with correct UTF-8 facet offsets, and deletes that
always point at a record created earlier in the same stream by the same account. The
output depends only on the ``FirehoseSpec``: the same spec yields byte-identical lines.
"""

from __future__ import annotations

import binascii
import bisect
import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec

from hubbub.ingest.mapping.jetstream import FOLLOW, LIKE, POST, PROFILE, REPOST

_Json = dict[str, Any]


_SORTABLE_BASE32: Final = "234567abcdefghijklmnopqrstuvwxyz"
_BASE32: Final = "abcdefghijklmnopqrstuvwxyz234567"
_MASK30: Final = (1 << 30) - 1
_MASK40: Final = (1 << 40) - 1
_MEMO_LIMIT: Final = 4096
_OLD_POST_MEMO_LIMIT: Final = 1 << 17
_PROGRESS_EVERY: Final = 10_000

_ZIPF_EXPONENT: Final = 1.1
# A small exact table stays in the CPU cache, which makes bisect several times faster;
# past it the continuous approximation is off by well under 0.1%.
_EXACT_ZIPF_RANKS: Final = 1 << 10
_LATEST_POSTS_KEPT: Final = 1 << 16
_RECENT_RECORDS: Final = 4096
_OLD_POSTS_PER_PAGE: Final = 8
_MIN_OLD_POST_AGE_US: Final = 3_600 * 1_000_000
_OLD_POST_MAX_AGE_US: Final = 30 * 86_400 * 1_000_000
_FIRST_SEQ: Final = 31_527_015_470
# Measured on the production sample: a commit's rev is ~0.57 s older than time_us, its
# rkey a little older still, and identity/account times a few tens of ms older.
_REV_LAG_US: Final = 570_000
_RKEY_LAG_US: Final = 585_000
_RELAY_LAG_US: Final = 50_000

# Shares (0..1) of the choices made while building records.
_LIKE_VIA_REPOST: Final = 0.08
_POSTS_BY_POPULAR: Final = 0.25
_POSTS_IN_PAGE_LANGUAGE: Final = 0.75
_POSTS_WITH_LANGS: Final = 0.96
_REPLIES: Final = 0.3
_REPLIES_IN_RECENT_THREADS: Final = 0.7
_LEADING_MENTIONS: Final = 0.1
_SECOND_SENTENCES: Final = 0.3
_TRAILING_MENTIONS: Final = 0.12
_HASHTAGS_PER_POST: Final = 0.15
_LINKS_PER_POST: Final = 0.08
_LINK_CARDS: Final = 0.7
_IMAGE_EMBEDS: Final = 0.12
_QUOTE_EMBEDS: Final = 0.04
_PROFILES_OF_POPULAR: Final = 0.2
_INACTIVE_ACCOUNTS: Final = 0.15
_BLOCKS_AMONG_UNKNOWN: Final = 0.5
_SCROBBLES_AMONG_UNKNOWN: Final = 0.3

_FACET_MENTION: Final = "app.bsky.richtext.facet#mention"
_FACET_TAG: Final = "app.bsky.richtext.facet#tag"
_FACET_LINK: Final = "app.bsky.richtext.facet#link"


@dataclass(frozen=True)
class FirehoseSpec:
    """What to generate: ``events`` lines over a population of ``pages`` accounts."""

    events: int
    pages: int
    seed: int = 0
    start_us: int = 1_783_175_888_000_000
    rate_per_s: int = 10_000


def generate_firehose(spec: FirehoseSpec) -> Iterator[bytes]:
    """Yield one JSON line (bytes, no trailing newline) per event.

    Raises ValueError at once, not on first iteration, for a spec that makes no sense.
    """
    if spec.events < 0 or spec.pages < 1 or spec.rate_per_s < 1:
        raise ValueError(f"invalid firehose spec: {spec}")
    return _Firehose(spec).lines()


def write_firehose(
    spec: FirehoseSpec, path: Path, progress: Callable[[int], None] | None = None
) -> int:
    """Write the lines to ``path``, each newline-terminated, and return how many.

    ``progress(n_written)`` is called after every 10k lines and once at the end.
    """
    written = 0
    lines = generate_firehose(spec)
    with path.open("wb") as out:
        while batch := list(itertools.islice(lines, _PROGRESS_EVERY)):
            batch.append(b"")
            out.write(b"\n".join(batch))
            written += len(batch) - 1
            if progress is not None:
                progress(written)
    return written


# --- multilingual content ----------------------------------------------------------------

_LANGUAGES: Final = ("en", "ja", "pt", "es", "de", "fr", "ko", "ar")
_LANGUAGE_WEIGHTS: Final = (50, 20, 10, 6, 5, 4, 3, 2)

_SENTENCES: Final[dict[str, tuple[str, ...]]] = {
    "en": (
        "Just finished my morning run and the sunrise was unreal ☀️",
        "Hot take: the best coffee is the one someone else makes for you ☕",
        "Can't believe how fast this week went by 😅",
        "Reading a great thread about city planning and bike lanes 🚲",
        "The new album has been on repeat all day, no skips 🎧",
        "Anyone else watching the game tonight? 🏀",
        "Our team just shipped the release, thank you all! 🎉",
        "Café au lait and a quiet Sunday, that's the whole plan",
        "My cat has decided the keyboard is her bed now 🐈",
        "Fireworks over the river tonight, happy Fourth! 🎆",
        "Rain all day, perfect excuse to bake bread 🍞",
        "Does anyone have a good sci-fi novel to recommend? 📚",
    ),
    "ja": (
        "今日は朝から雨で、ずっと家で本を読んでいました📚",
        "新しいカフェに行ってみたら、ケーキがとても美味しかった🍰",
        "待ってライブのチケット当たった、嬉しすぎる🎉",
        "仕事終わり、やっと週末だ〜",
        "猫が膝の上で寝てしまって動けない🐈",
        "花火大会の写真を整理中です🎆",
        "このアニメの最終回、泣いた😭",
        "東京は今日も暑いですね……🥵",
    ),
    "pt": (
        "Bom dia! Hoje o café está perfeito ☕",
        "Alguém mais assistindo o jogo? Que emoção ⚽",
        "Finalmente terminei o projeto, que alívio 😮‍💨",
        "A feijoada de sábado já é tradição aqui em casa 🍲",
        "Choveu o dia inteiro em São Paulo 🌧️",
        "Ouvindo bossa nova e lendo um livro ótimo 📖",
    ),
    "es": (
        "¡Qué día tan bonito en Madrid! ☀️",
        "Mañana empiezo las vacaciones, por fin 🏖️",
        "¿Alguien sabe dónde ver el partido esta noche? ⚽",
        "La canción nueva de mi banda favorita es increíble 🎶",
        "Preparando una paella para toda la familia 🥘",
        "Qué rápido pasó la semana 😅",
    ),
    "de": (
        "Endlich Wochenende! Zeit für Kaffee und Kuchen ☕",
        "Die Bahn ist schon wieder verspätet… 🚆",
        "Heute im Park gewesen, das Wetter war großartig 🌳",
        "Wer schaut heute Abend das Spiel? ⚽",
        "Frisches Brot vom Bäcker ist einfach unschlagbar 🥨",
        "Schönen Feierabend euch allen! 🍻",
    ),
    "fr": (
        "Quelle belle journée à Paris ! ☀️",
        "Je viens de finir un livre génial, je recommande 📚",
        "Café, croissant et pluie fine : le dimanche idéal ☕",
        "Qui regarde le match ce soir ? ⚽",
        "Première fois au festival, l'ambiance est incroyable 🎶",
        "Ça y est, les vacances commencent ! 🏖️",
    ),
    "ko": (
        "오늘 날씨 정말 좋네요 ☀️",
        "새로 나온 앨범 너무 좋아요 🎧",
        "퇴근하고 치킨 먹는 중 🍗",
        "주말에 한강 가실 분? 🚲",
        "이쁘시네용~~~",
        "드디어 금요일이다! 🎉",
    ),
    "ar": (
        "صباح الخير يا أصدقاء ☀️",
        "أجمل شيء في الصيف هو البحر 🌊",
        "قرأت اليوم كتاباً رائعاً 📚",
        "من يشاهد المباراة الليلة؟ ⚽",
        "القهوة العربية مع التمر لا مثيل لها ☕",
        "عطلة سعيدة للجميع 🌙",
    ),
}

_HASHTAGS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Bluesky", "photography", "coffee", "NBA", "art", "booksky"),
    "ja": ("日本", "アニメ", "猫", "花火"),
    "pt": ("Brasil", "futebol", "música"),
    "es": ("fútbol", "España", "música"),
    "de": ("Fußball", "Berlin", "Kaffee"),
    "fr": ("Paris", "cinéma", "café"),
    "ko": ("한국", "케이팝", "서울"),
    "ar": ("السعودية", "قهوة", "كرة_القدم"),
}

_BIOS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Coffee, code and cats ☕🐈", "Photographer. Views my own 📷", "she/her · books 📚"),
    "ja": ("絵を描いています🎨", "猫と写真が好きです📷", "社会人です。趣味はアニメ"),
    "pt": ("Apaixonada por música 🎶", "Jornalista em São Paulo", "Café e futebol ⚽"),
    "es": ("Diseñadora gráfica en Sevilla ✨", "Fotografía y montaña 🏔️", "Periodista"),
    "de": ("Softwareentwickler aus Köln", "Bücher, Kaffee und Fußball ⚽", "Grüße aus Wien"),
    "fr": ("Photographe à Lyon 📷", "Passionnée de cinéma 🎬", "Café et littérature ☕"),
    "ko": ("사진 찍는 것을 좋아해요 📷", "서울에 살아요", "음악과 커피 ☕"),
    "ar": ("مصور فوتوغرافي 📷", "أحب القراءة والقهوة ☕", "مهندس برمجيات"),
}

# (uri, text shown in the post, card title, card description)
_Link = tuple[str, str, str, str]
_LINKS: Final[tuple[_Link, ...]] = (
    (
        "https://www.youtube.com/watch?v=V5lDo-jw8mA",
        "youtube.com/watch?v=V5lD...",
        "What does America's 250th anniversary mean to Native Americans?",
        "YouTube video by Reuters",
    ),
    (
        "https://www3.nhk.or.jp/news/html/20260704/k10014853211000.html",
        "www3.nhk.or.jp/news/html/2026...",
        "東京で猛暑日 熱中症に警戒",
        "NHKニュース",
    ),
    (
        "https://g1.globo.com/sp/sao-paulo/noticia/2026/07/04/chuva.ghtml",
        "g1.globo.com/sp/sao-paulo/not...",
        "Chuva forte atinge São Paulo neste sábado",
        "Previsão indica frente fria até segunda-feira",
    ),
    (
        "https://elpais.com/cultura/2026-07-04/festival-de-verano.html",
        "elpais.com/cultura/2026-07-0...",
        "El festival de verano más esperado del año",
        "Música, cine y teatro en Madrid",
    ),
    (
        "https://www.spiegel.de/wissenschaft/hitzewelle-a-1234.html",
        "spiegel.de/wissenschaft/hitz...",
        "Hitzewelle: Was jetzt zu beachten ist",
        "Tipps für heiße Tage",
    ),
    (
        "https://www.lemonde.fr/culture/article/2026/07/04/cinema.html",
        "lemonde.fr/culture/article/20...",
        "Le cinéma français à l'honneur cet été",
        "Notre sélection des films à voir",
    ),
    (
        "https://n.news.naver.com/article/001/0015000000",
        "n.news.naver.com/article/001/...",
        "서울 폭염 특보 발령",
        "연합뉴스",
    ),
    (
        "https://www.aljazeera.net/news/2026/7/4/weather",
        "aljazeera.net/news/2026/7/4/...",
        "موجة حر تضرب المنطقة",
        "الجزيرة نت",
    ),
    (
        "https://github.com/bluesky-social/jetstream",
        "github.com/bluesky-social/jet...",
        "bluesky-social/jetstream",
        "A simplified JSON event stream for AT Proto",
    ),
)

# Per language: (given names, family names), each as (display, ASCII for handles).
_NAMES: Final[dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]]] = {
    "en": (
        (
            ("Emma", "emma"),
            ("Olivia", "olivia"),
            ("Noah", "noah"),
            ("James", "james"),
            ("Ava", "ava"),
            ("Mia", "mia"),
            ("Zoë", "zoe"),
            ("Renée", "renee"),
        ),
        (
            ("Smith", "smith"),
            ("Johnson", "johnson"),
            ("Walker", "walker"),
            ("Brooks", "brooks"),
            ("O'Neil", "oneil"),
            ("Nguyen", "nguyen"),
        ),
    ),
    "ja": (
        (
            ("さくら", "sakura"),
            ("陽翔", "haruto"),
            ("結衣", "yui"),
            ("蓮", "ren"),
            ("ひなた", "hinata"),
        ),
        (("佐藤", "sato"), ("鈴木", "suzuki"), ("高橋", "takahashi"), ("田中", "tanaka")),
    ),
    "pt": (
        (("João", "joao"), ("Luíza", "luiza"), ("Ana", "ana"), ("Vitória", "vitoria")),
        (("Gonçalves", "goncalves"), ("Araújo", "araujo"), ("Conceição", "conceicao")),
    ),
    "es": (
        (("José", "jose"), ("María", "maria"), ("Sofía", "sofia"), ("Martín", "martin")),
        (("Álvarez", "alvarez"), ("Peña", "pena"), ("Muñoz", "munoz"), ("Ibáñez", "ibanez")),
    ),
    "de": (
        (("Jürgen", "juergen"), ("Jörg", "joerg"), ("Lena", "lena"), ("Max", "max")),
        (("Müller", "mueller"), ("Schröder", "schroeder"), ("Weiß", "weiss"), ("Groß", "gross")),
    ),
    "fr": (
        (("Chloé", "chloe"), ("Hélène", "helene"), ("François", "francois"), ("Anaïs", "anais")),
        (("Lefèvre", "lefevre"), ("Béranger", "beranger"), ("Girard", "girard")),
    ),
    "ko": (
        (("지민", "jimin"), ("서연", "seoyeon"), ("민준", "minjun"), ("하은", "haeun")),
        (("김", "kim"), ("이", "lee"), ("박", "park")),
    ),
    "ar": (
        (("ليلى", "layla"), ("عمر", "omar"), ("فاطمة", "fatima"), ("يوسف", "youssef")),
        (("الحسن", "alhassan"), ("منصور", "mansour"), ("العلي", "alali")),
    ),
}

_NAME_EMOJI: Final = ("", "", "", "", " 🌸", " ✨", " 🦋", " 🎧")
_FAMILY_NAME_FIRST: Final = frozenset({"ja", "ko"})


def _byte_length(text: str) -> int:
    return len(text.encode())


_SENTENCES_WITH_SIZE: Final = {
    lang: tuple((text, _byte_length(text)) for text in texts) for lang, texts in _SENTENCES.items()
}


@dataclass(frozen=True)
class Page:
    """An account of the synthetic population."""

    did: str
    handle: str
    display_name: str
    lang: str


# --- identifiers -------------------------------------------------------------------------


def _strong_ref(cid: str, uri: str) -> str:
    """A com.atproto.repo.strongRef as JSON text, ready to splice into a line."""
    return f'{{"cid":"{cid}","uri":"{uri}"}}'


def _pairs(alphabet: str) -> tuple[str, ...]:
    """All 1024 two-character strings, indexed by the 10-bit value they encode."""
    return tuple(a + b for a in alphabet for b in alphabet)


_TID_PAIRS: Final = _pairs(_SORTABLE_BASE32)


def _mix30(n: int) -> int:
    """A bijection of [0, 2**30) that spreads every input bit over the whole output."""
    x = (n * 0x2C9277B5) & _MASK30
    x ^= x >> 15
    x = (x * 0x1B873593) & _MASK30
    return x ^ (x >> 13)


def _did_encoder() -> Callable[[int], str]:
    """Maps a page index below 2**40 to a unique, random-looking did:plc.

    The index goes through a bijection of 40 bits whose four 10-bit parts each pick a
    6-char chunk from a table of 1024 distinct random strings: as cheap as a few table
    lookups, and distinct indexes always give distinct dids.
    """
    rng = random.Random("did:plc")
    a, b, c, d = (_distinct_chunks(rng, 6) for _ in range(4))

    def did(index: int) -> str:
        x = ((index + 0x5A17F3D9C1) * 0xC6A4A7935BD1E995) & _MASK40
        x ^= x >> 21
        return f"did:plc:{a[x & 1023]}{b[(x >> 10) & 1023]}{c[(x >> 20) & 1023]}{d[x >> 30]}"

    return did


def _distinct_chunks(rng: random.Random, length: int) -> tuple[str, ...]:
    chunks: dict[str, None] = {}
    while len(chunks) < 1024:
        chunks["".join(rng.choices(_BASE32, k=length))] = None
    return tuple(chunks)


page_did: Final = _did_encoder()
"""The did of the page with a given index (independent of the seed)."""

_BASE64_TO_BASE32: Final = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", _BASE32.encode() * 2
)


def _base32_text(data: bytes) -> str:
    """Lowercase base32-alphabet text from bytes, 4 chars per 3 bytes.

    Not RFC 4648 base32 (it drops one bit in six), but as random-looking, and it runs in
    C: binascii has no base32 in Python 3.11 and base64.b32encode is ~8x slower.
    """
    return binascii.b2a_base64(data, newline=False).translate(_BASE64_TO_BASE32).decode()


def _clock_pair(index: int) -> str:
    """The last two TID chars (clock id) used by this page's PDS."""
    return _TID_PAIRS[(index * 613 + 5) & 1023]  # inlined in _Firehose._engagement


def _tid(micros: int, clock_pair: str) -> str:
    """A TID: 13 sortable-base32 chars of (microseconds << 10 | clock id).

    ``clock_pair`` is the last two chars, which encode the 10-bit clock id.
    """
    pairs = _TID_PAIRS
    return (
        f"{_SORTABLE_BASE32[micros >> 50]}{pairs[(micros >> 40) & 1023]}"
        f"{pairs[(micros >> 30) & 1023]}{pairs[(micros >> 20) & 1023]}"
        f"{pairs[(micros >> 10) & 1023]}{pairs[micros & 1023]}{clock_pair}"
    )


def _commit_tids_encoder() -> Callable[[int, str], tuple[str, str]]:
    """The (rev, rkey) TIDs of a commit relayed at ``now``, as measured on the sample.

    Consecutive events share a millisecond (micros >> 10), so its 9 chars are memoised.
    """
    millisecond_heads: dict[int, str] = {}
    pairs = _TID_PAIRS

    def commit_tids(now: int, clock_pair: str) -> tuple[str, str]:
        rev_us, rkey_us = now - _REV_LAG_US, now - _RKEY_LAG_US
        rev_head = millisecond_heads.get(rev_us >> 10)
        rkey_head = millisecond_heads.get(rkey_us >> 10)
        if rev_head is None or rkey_head is None:
            if len(millisecond_heads) > _MEMO_LIMIT:
                millisecond_heads.clear()
            rev_head = millisecond_heads[rev_us >> 10] = _tid(rev_us, "")[:9]
            rkey_head = millisecond_heads[rkey_us >> 10] = _tid(rkey_us, "")[:9]
        return (
            f"{rev_head}{pairs[rev_us & 1023]}{clock_pair}",
            f"{rkey_head}{pairs[rkey_us & 1023]}{clock_pair}",
        )

    return commit_tids


_MILLISECONDS: Final = tuple(f".{ms:03d}Z" for ms in range(1000))


def _iso_formatter() -> Callable[[int], str]:
    """Formats epoch microseconds as an RFC 3339 UTC timestamp with milliseconds."""
    seconds_memo: dict[int, str] = {}
    milliseconds = _MILLISECONDS

    def iso(micros: int) -> str:
        seconds, fraction = divmod(micros, 1_000_000)
        prefix = seconds_memo.get(seconds)
        if prefix is None:
            if len(seconds_memo) > _MEMO_LIMIT:
                seconds_memo.clear()
            prefix = seconds_memo[seconds] = time.strftime(
                "%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)
            )
        return f"{prefix}{milliseconds[fraction // 1000]}"

    return iso


def _name_combinations() -> tuple[tuple[str, str, str], ...]:
    """Every (lang, display name, handle stem) combination, in a fixed shuffled order."""
    combos = [
        (lang, _display_name(lang, given[0], family[0]), given[1] + family[1])
        for lang, (givens, families) in _NAMES.items()
        for given in givens
        for family in families
    ]
    random.Random(0x4A3E).shuffle(combos)
    return tuple(combos)


def _display_name(lang: str, given: str, family: str) -> str:
    if lang in _FAMILY_NAME_FIRST:
        return family + given
    return f"{given} {family}"


_COMBINATIONS: Final = _name_combinations()


def _combination_slot(index: int) -> int:
    count = len(_COMBINATIONS)
    return index if index < count else _mix30(index) % count


def page(index: int) -> Page:
    """The page with this index: did, handle and display name are stable across seeds.

    The first pages take every name combination once; later ones reuse a name and add
    their index to the handle, so handles stay unique.
    """
    lang, display, stem = _COMBINATIONS[_combination_slot(index)]
    handle = stem if index < len(_COMBINATIONS) else f"{stem}{index}"
    display += _NAME_EMOJI[_mix30(index + 1) % len(_NAME_EMOJI)]
    return Page(page_did(index), handle + ".bsky.social", display, lang)


def _page_lang(index: int) -> str:
    return _COMBINATIONS[_combination_slot(index)][0]


# --- sampling ----------------------------------------------------------------------------


class _ZipfRanks:
    """Draws a 0-based rank r with probability proportional to (r + 1) ** -exponent.

    The first ranks use an exact cumulative table (bisect); the long tail, where single
    ranks hardly matter, inverts the integral of x ** -exponent so memory stays bounded
    for tens of millions of pages.
    """

    def __init__(self, population: int, exponent: float) -> None:
        head = min(population, _EXACT_ZIPF_RANKS)
        self.cumulative = list(itertools.accumulate(k**-exponent for k in range(1, head + 1)))
        self._head = head
        self._population = population
        self._exponent_minus_one = exponent - 1.0
        self._inverse_power = 1.0 / (1.0 - exponent)
        self.head_mass = self.cumulative[-1]
        self._tail_start = (head + 0.5) ** (1.0 - exponent)
        tail_mass = (self._tail_start - (population + 0.5) ** (1.0 - exponent)) / (exponent - 1.0)
        self.total = self.head_mass + tail_mass

    def rank(self, uniform: float) -> int:
        mass = uniform * self.total
        if mass < self.head_mass:
            return bisect.bisect_left(self.cumulative, mass)
        return self.tail_rank(mass)

    def tail_rank(self, mass: float) -> int:
        """The rank past the exact table where the cumulative mass reaches ``mass``."""
        rest = self._tail_start - self._exponent_minus_one * (mass - self.head_mass)
        x = int(rest**self._inverse_power + 0.5) if rest > 0 else self._population
        return min(self._population, max(self._head + 1, x)) - 1


class _Recent:
    """A bounded memory of records created earlier in the stream.

    Once full, a new record overwrites a slot chosen by the event time, which is cheaper
    than asking the random generator and just as arbitrary.
    """

    def __init__(self, random_unit: Callable[[], float]) -> None:
        self._random_unit = random_unit
        self.items: list[tuple[Any, ...]] = []

    def remember(self, item: tuple[Any, ...], now: int) -> None:
        items = self.items
        if len(items) < _RECENT_RECORDS:
            items.append(item)
        else:
            items[now % _RECENT_RECORDS] = item

    def pick(self) -> tuple[Any, ...]:
        return self.items[int(self._random_unit() * len(self.items))]

    def take(self) -> tuple[Any, ...]:
        """Remove and return a random record, so that no record is deleted twice."""
        items = self.items
        index = int(self._random_unit() * len(items))
        item = items[index]
        items[index] = items[-1]
        items.pop()
        return item


def _cumulative(weights: Sequence[float]) -> list[float]:
    total = sum(weights)
    cumulative = [running / total for running in itertools.accumulate(weights)]
    cumulative[-1] = 1.0
    return cumulative


# --- the stream --------------------------------------------------------------------------


class _Firehose:
    """State of one generated stream: clock, population, recent records to refer to."""

    _INACTIVE_STATUSES: Final = ("deactivated", "deactivated", "deleted", "takendown", "suspended")

    def __init__(self, spec: FirehoseSpec) -> None:
        self._spec = spec
        self._random = random.Random(spec.seed).random
        self._pages = spec.pages
        self._zipf = _ZipfRanks(spec.pages, _ZIPF_EXPONENT)
        self._zipf_rank = self._zipf.rank
        self._commit_tids = _commit_tids_encoder()
        self._iso = _iso_formatter()
        self._random_bytes = random.Random(f"cid:{spec.seed}").randbytes
        self._step_us = 1_000_000 / spec.rate_per_s
        self._seq = _FIRST_SEQ
        self._old_posts: dict[int, str] = {}
        self._latest_posts: list[str | None] = [None] * min(spec.pages, _LATEST_POSTS_KEPT)
        self._likes, self._reposts = _Recent(self._random), _Recent(self._random)
        self._follows, self._posts = _Recent(self._random), _Recent(self._random)
        self._lang_cumulative = _cumulative(_LANGUAGE_WEIGHTS)
        self._encode = msgspec.json.Encoder().encode
        mix: list[tuple[float, Callable[[int], bytes]]] = [
            (69.0, self._like_created),
            (10.85, self._post_created),
            (0.11, self._post_deleted),
            (0.04, self._post_updated),
            (10.0, self._repost_created),
            (4.5, self._follow_created),
            (1.5, self._follow_deleted),
            (1.0, self._like_deleted),
            (0.3, self._repost_deleted),
            (0.6, self._profile_updated),
            (0.2, self._profile_created),
            (0.6, self._identity_changed),
            (0.6, self._account_changed),
            (0.5, self._unknown_record),
        ]
        self._mix_cumulative = _cumulative([weight for weight, _ in mix])
        self._handlers = [handler for _, handler in mix]

    def lines(self) -> Iterator[bytes]:
        """Encoded events in stream order; time_us strictly increases, ~1e6/rate_per_s apart.

        Each handler returns the finished JSON line of one event relayed at ``now``.
        """
        random_unit, handlers, mix = self._random, self._handlers, self._mix_cumulative
        bisect_left = bisect.bisect_left
        half_step = self._step_us / 2
        now = self._spec.start_us
        for _ in range(self._spec.events):
            now += int(half_step + 2 * half_step * random_unit()) or 1
            yield handlers[bisect_left(mix, random_unit())](now)

    # identifiers and time

    def _cid(self) -> str:
        """The next content id of a record created in the stream."""
        return "bafyrei" + _base32_text(self._random_bytes(39))

    def _blob_cid(self) -> str:
        """The next content id of a blob (an image) referenced in the stream."""
        return "bafkrei" + _base32_text(self._random_bytes(39))

    def _created_at(self, now: int) -> str:
        """Client clocks run a little ahead of or (mostly) behind the relay."""
        return self._iso(now + 300_000 - int(self._random() * 1_800_000))

    def _next_seq(self, now: int) -> int:
        """Relay sequence numbers: increasing, advancing about once per event."""
        elapsed_events = int((now - self._spec.start_us) / self._step_us)
        self._seq = max(self._seq + 1, _FIRST_SEQ + elapsed_events)
        return self._seq

    def _actor(self) -> int:
        return int(self._random() * self._pages)

    def _popular(self) -> int:
        return self._zipf_rank(self._random())

    # envelopes

    def _commit(self, author: int, now: int, operation: str, collection: str, rkey: str) -> _Json:
        commit: _Json = {
            "rev": self._commit_tids(now, _clock_pair(author))[0],
            "operation": operation,
            "collection": collection,
            "rkey": rkey,
        }
        return {"did": page_did(author), "time_us": now, "kind": "commit", "commit": commit}

    def _with_record(self, event: _Json, record: _Json) -> bytes:
        commit = event["commit"]
        commit["record"] = record
        commit["cid"] = self._cid()
        return self._encode(event)

    def _created(
        self, author: int, now: int, collection: str, record: _Json, rkey: str = ""
    ) -> _Json:
        """A create commit, with a fresh TID rkey unless one is given."""
        rev, new_rkey = self._commit_tids(now, _clock_pair(author))
        commit = {
            "rev": rev,
            "operation": "create",
            "collection": collection,
            "rkey": rkey or new_rkey,
            "record": record,
            "cid": self._cid(),
        }
        return {"did": page_did(author), "time_us": now, "kind": "commit", "commit": commit}

    def _deleted(self, recent: _Recent, now: int, collection: str) -> bytes:
        author, rkey = recent.take()[:2]
        return self._encode(self._commit(author, now, "delete", collection, rkey))

    # engagement

    def _subject_post(self) -> str:
        """A strong ref to a post by a page drawn by popularity.

        Half the time it is the page's latest post in the stream, if it has one; otherwise
        one of the posts the page published before the stream started.
        """
        zipf = self._zipf
        mass = self._random() * zipf.total
        if mass < zipf.head_mass:
            author = bisect.bisect_left(zipf.cumulative, mass)
        else:
            author = zipf.tail_rank(mass)
        number = int(self._random() * (2 * _OLD_POSTS_PER_PAGE))
        if number >= _OLD_POSTS_PER_PAGE and author < len(self._latest_posts):
            latest = self._latest_posts[author]
            if latest is not None:
                return latest
        key = author * _OLD_POSTS_PER_PAGE + number % _OLD_POSTS_PER_PAGE
        old = self._old_posts.get(key)
        if old is None:
            if len(self._old_posts) > _OLD_POST_MEMO_LIMIT:
                self._old_posts.clear()
            old = self._old_posts[key] = self._old_post(author, key)
        return old

    def _old_post(self, author: int, key: int) -> str:
        """One of the posts a page published before the stream started.

        Its uri depends only on the key; its cid is drawn once and then remembered with
        it, so a post cited again after the memo is cleared may show another cid, as an
        edited post would.
        """
        age = _MIN_OLD_POST_AGE_US + _mix30(key) * 997 % _OLD_POST_MAX_AGE_US
        rkey = _tid(self._spec.start_us - age, _clock_pair(author))
        return _strong_ref(self._cid(), f"at://{page_did(author)}/{POST}/{rkey}")

    def _engagement(
        self, actor: int, now: int, collection: str, record_members: str
    ) -> tuple[bytes, str, str]:
        """The line, rkey and cid of a like, repost or follow create.

        These make up ~85% of the stream, so the line is formatted directly instead of
        building four dicts for msgspec: measured, the generator runs ~1.5x faster. Every
        value interpolated is a did, TID, CID, timestamp or JSON made here, none of which
        needs escaping. ``record_members`` are the record's members after createdAt.
        """
        rev, rkey = self._commit_tids(now, _TID_PAIRS[(actor * 613 + 5) & 1023])
        cid = self._cid()
        created_at = self._iso(now + 300_000 - int(self._random() * 1_800_000))
        line = (
            f'{{"did":"{page_did(actor)}","time_us":{now},"kind":"commit","commit":{{'
            f'"rev":"{rev}","operation":"create","collection":"{collection}","rkey":"{rkey}",'
            f'"record":{{"$type":"{collection}","createdAt":"{created_at}",{record_members}}},'
            f'"cid":"{cid}"}}}}'
        )
        return line.encode(), rkey, cid

    def _like_created(self, now: int) -> bytes:
        actor = int(self._random() * self._pages)
        members = f'"subject":{self._subject_post()}'
        if self._random() < _LIKE_VIA_REPOST and self._reposts.items:
            members = f'{members},"via":{self._reposts.pick()[2]}'
        line, rkey, _ = self._engagement(actor, now, LIKE, members)
        self._likes.remember((actor, rkey), now)
        return line

    def _repost_created(self, now: int) -> bytes:
        actor = int(self._random() * self._pages)
        line, rkey, cid = self._engagement(actor, now, REPOST, f'"subject":{self._subject_post()}')
        ref = _strong_ref(cid, f"at://{page_did(actor)}/{REPOST}/{rkey}")
        self._reposts.remember((actor, rkey, ref), now)
        return line

    def _follow_created(self, now: int) -> bytes:
        actor = int(self._random() * self._pages)
        members = f'"subject":"{page_did(self._popular())}"'
        line, rkey, _ = self._engagement(actor, now, FOLLOW, members)
        self._follows.remember((actor, rkey), now)
        return line

    def _like_deleted(self, now: int) -> bytes:
        if not self._likes.items:
            return self._like_created(now)
        return self._deleted(self._likes, now, LIKE)

    def _repost_deleted(self, now: int) -> bytes:
        if not self._reposts.items:
            return self._repost_created(now)
        return self._deleted(self._reposts, now, REPOST)

    def _follow_deleted(self, now: int) -> bytes:
        if not self._follows.items:
            return self._follow_created(now)
        return self._deleted(self._follows, now, FOLLOW)

    # posts

    def _post_created(self, now: int) -> bytes:
        # Popular pages post more often than the average account.
        author = self._popular() if self._random() < _POSTS_BY_POPULAR else self._actor()
        record, root = self._post_record(author, now)
        event = self._created(author, now, POST, record)
        commit = event["commit"]
        ref = _strong_ref(commit["cid"], f"at://{event['did']}/{POST}/{commit['rkey']}")
        self._posts.remember((author, commit["rkey"], ref, root or ref), now)
        if author < len(self._latest_posts):
            self._latest_posts[author] = ref
        return self._encode(event)

    def _post_deleted(self, now: int) -> bytes:
        if not self._posts.items:
            return self._post_created(now)
        return self._deleted(self._posts, now, POST)

    def _post_updated(self, now: int) -> bytes:
        if not self._posts.items:
            return self._post_created(now)
        author, rkey = self._posts.pick()[:2]
        event = self._commit(author, now, "update", POST, rkey)
        return self._with_record(event, self._post_record(author, now)[0])

    def _post_lang(self, author: int) -> str:
        if self._random() < _POSTS_IN_PAGE_LANGUAGE:
            return _page_lang(author)
        return _LANGUAGES[bisect.bisect_left(self._lang_cumulative, self._random())]

    def _post_record(self, author: int, now: int) -> tuple[_Json, str | None]:
        """A post record and, for a reply, the root of its thread."""
        lang = self._post_lang(author)
        text, facets, link = self._post_text(lang)
        record: _Json = {"$type": POST, "createdAt": self._created_at(now)}
        embed = self._embed(link, lang)
        if embed is not None:
            record["embed"] = embed
        if facets:
            record["facets"] = facets
        if self._random() < _POSTS_WITH_LANGS:
            record["langs"] = [lang]
        root = None
        if self._random() < _REPLIES:
            parent, root = self._reply_target()
            record["reply"] = {"parent": msgspec.Raw(parent), "root": msgspec.Raw(root)}
        record["text"] = text
        return record, root

    def _reply_target(self) -> tuple[str, str]:
        if self._posts.items and self._random() < _REPLIES_IN_RECENT_THREADS:
            parent, root = self._posts.pick()[2:4]
            return parent, root
        parent = self._subject_post()
        return parent, parent

    def _post_text(self, lang: str) -> tuple[str, list[_Json], _Link | None]:
        """Text made of sentences, mentions, hashtags and a link, with byte-exact facets."""
        random_unit = self._random
        text = _TextBuilder()
        if random_unit() < _LEADING_MENTIONS:
            self._mention(text)
            text.add(" ")
        text.add_sentence(self._sentence(lang))
        if random_unit() < _SECOND_SENTENCES:
            text.add(" ")
            text.add_sentence(self._sentence(lang))
        if random_unit() < _TRAILING_MENTIONS:
            text.add(" ")
            self._mention(text)
        if random_unit() < _HASHTAGS_PER_POST:
            tags = _HASHTAGS[lang]
            tag = tags[int(random_unit() * len(tags))]
            text.add(" ")
            text.add_facet("#" + tag, {"$type": _FACET_TAG, "tag": tag})
        link = None
        if random_unit() < _LINKS_PER_POST:
            link = _LINKS[int(random_unit() * len(_LINKS))]
            text.add(" ")
            text.add_facet(link[1], {"$type": _FACET_LINK, "uri": link[0]})
        return "".join(text.parts), text.facets, link

    def _sentence(self, lang: str) -> tuple[str, int]:
        sentences = _SENTENCES_WITH_SIZE[lang]
        return sentences[int(self._random() * len(sentences))]

    def _mention(self, text: _TextBuilder) -> None:
        mentioned = page(self._popular())
        text.add_facet("@" + mentioned.handle, {"$type": _FACET_MENTION, "did": mentioned.did})

    def _embed(self, link: _Link | None, lang: str) -> _Json | None:
        if link is not None and self._random() < _LINK_CARDS:
            uri, _, title, description = link
            external = {"description": description, "title": title, "uri": uri}
            return {"$type": "app.bsky.embed.external", "external": external}
        roll = self._random()
        if roll < _IMAGE_EMBEDS:
            return self._images(lang)
        if roll < _IMAGE_EMBEDS + _QUOTE_EMBEDS and self._posts.items:
            quoted = msgspec.Raw(self._posts.pick()[2])
            return {"$type": "app.bsky.embed.record", "record": quoted}
        return None

    def _images(self, lang: str) -> _Json:
        sentences = _SENTENCES[lang]
        images = []
        for _ in range(1 + int(self._random() * 3) // 2):
            blob = {
                "$type": "blob",
                "ref": {"$link": self._blob_cid()},
                "mimeType": "image/jpeg",
                "size": 40_000 + int(self._random() * 900_000),
            }
            alt = sentences[int(self._random() * len(sentences))]
            ratio = {"height": 1080, "width": 1440}
            images.append({"alt": alt, "aspectRatio": ratio, "image": blob})
        return {"$type": "app.bsky.embed.images", "images": images}

    # profiles, identity, accounts

    def _profile_record(self, author: int, now: int) -> _Json:
        about = page(author)
        bios = _BIOS[about.lang]
        return {
            "$type": PROFILE,
            "createdAt": self._created_at(now),
            "description": bios[int(self._random() * len(bios))],
            "displayName": about.display_name,
        }

    def _profile_created(self, now: int) -> bytes:
        author = self._actor()
        record = self._profile_record(author, now)
        return self._encode(self._created(author, now, PROFILE, record, "self"))

    def _profile_updated(self, now: int) -> bytes:
        author = self._popular() if self._random() < _PROFILES_OF_POPULAR else self._actor()
        event = self._commit(author, now, "update", PROFILE, "self")
        return self._with_record(event, self._profile_record(author, now))

    def _identity_changed(self, now: int) -> bytes:
        about = page(self._actor())
        identity = {
            "did": about.did,
            "handle": about.handle,
            "seq": self._next_seq(now),
            "time": self._iso(now - _RELAY_LAG_US),
        }
        event = {"did": about.did, "time_us": now, "kind": "identity", "identity": identity}
        return self._encode(event)

    def _account_changed(self, now: int) -> bytes:
        did = page_did(self._actor())
        account: _Json = {"active": True, "did": did, "seq": self._next_seq(now)}
        if self._random() < _INACTIVE_ACCOUNTS:
            statuses = self._INACTIVE_STATUSES
            account["active"] = False
            account["status"] = statuses[int(self._random() * len(statuses))]
        account["time"] = self._iso(now - _RELAY_LAG_US)
        return self._encode({"did": did, "time_us": now, "kind": "account", "account": account})

    # collections Hubbub does not index

    def _unknown_record(self, now: int) -> bytes:
        author = self._actor()
        roll = self._random()
        if roll < _BLOCKS_AMONG_UNKNOWN:
            record = {
                "$type": "app.bsky.graph.block",
                "createdAt": self._created_at(now),
                "subject": page_did(self._actor()),
            }
            return self._encode(self._created(author, now, "app.bsky.graph.block", record))
        scrobble = roll < _BLOCKS_AMONG_UNKNOWN + _SCROBBLES_AMONG_UNKNOWN
        collection = "fm.teal.alpha.actor.status" if scrobble else "app.bsky.actor.status"
        event = self._commit(author, now, "update", collection, "self")
        return self._with_record(event, self._status_record(collection, now))

    def _status_record(self, collection: str, now: int) -> _Json:
        if collection == "app.bsky.actor.status":
            return {
                "$type": collection,
                "createdAt": self._created_at(now),
                "durationMinutes": 60,
                "status": "app.bsky.actor.status#live",
            }
        return {
            "$type": collection,
            "expiry": self._iso(now + 600_000_000),
            "item": {
                "artists": [{"artistName": "Dianna Lopez"}],
                "duration": None,
                "releaseName": "Sacred Sands",
                "submissionClientAgent": "multi-scrobbler/0.14.1",
                "trackName": "Sacred Sands",
            },
            "time": self._iso(now - 500_000),
        }


class _TextBuilder:
    """Accumulates post text and the facets that point into it by UTF-8 byte offset."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.facets: list[_Json] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += _byte_length(text)

    def add_sentence(self, sentence: tuple[str, int]) -> None:
        """A sentence with its precomputed UTF-8 size."""
        self.parts.append(sentence[0])
        self.size += sentence[1]

    def add_facet(self, text: str, feature: _Json) -> None:
        start = self.size
        self.add(text)
        index = {"byteEnd": self.size, "byteStart": start}
        self.facets.append({"features": [feature], "index": index})
