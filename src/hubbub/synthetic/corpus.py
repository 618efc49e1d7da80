"""The text material of the synthetic world: sentences, hashtags, bios, links and names
in eight languages, and the builder that joins them into post text with facets.

Facets point into the text by UTF-8 byte offset, as Bluesky's do, so the material mixes
scripts and emoji on purpose: a consumer that counts characters instead of bytes gets
them wrong.
"""

from __future__ import annotations

from typing import Any, Final

LANGUAGES: Final = ("en", "ja", "pt", "es", "de", "fr", "ko", "ar")
LANGUAGE_WEIGHTS: Final = (50, 20, 10, 6, 5, 4, 3, 2)

SENTENCES: Final[dict[str, tuple[str, ...]]] = {
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

HASHTAGS: Final[dict[str, tuple[str, ...]]] = {
    "en": ("Bluesky", "photography", "coffee", "NBA", "art", "booksky"),
    "ja": ("日本", "アニメ", "猫", "花火"),
    "pt": ("Brasil", "futebol", "música"),
    "es": ("fútbol", "España", "música"),
    "de": ("Fußball", "Berlin", "Kaffee"),
    "fr": ("Paris", "cinéma", "café"),
    "ko": ("한국", "케이팝", "서울"),
    "ar": ("السعودية", "قهوة", "كرة_القدم"),
}

BIOS: Final[dict[str, tuple[str, ...]]] = {
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
Link = tuple[str, str, str, str]
LINKS: Final[tuple[Link, ...]] = (
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
NAMES: Final[dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]]] = {
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

NAME_EMOJI: Final = ("", "", "", "", " 🌸", " ✨", " 🦋", " 🎧")
FAMILY_NAME_FIRST: Final = frozenset({"ja", "ko"})


def byte_length(text: str) -> int:
    return len(text.encode())


SENTENCES_WITH_SIZE: Final = {
    lang: tuple((text, byte_length(text)) for text in texts) for lang, texts in SENTENCES.items()
}


class TextBuilder:
    """Accumulates post text and the facets that point into it by UTF-8 byte offset."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.facets: list[dict[str, Any]] = []
        self.size = 0

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += byte_length(text)

    def add_sentence(self, sentence: tuple[str, int]) -> None:
        """A sentence with its precomputed UTF-8 size."""
        self.parts.append(sentence[0])
        self.size += sentence[1]

    def add_facet(self, text: str, feature: dict[str, Any]) -> None:
        start = self.size
        self.add(text)
        index = {"byteEnd": self.size, "byteStart": start}
        self.facets.append({"features": [feature], "index": index})
