"""The listening benchmark's matching half: posts matched per second against N searches.

Posts are the generated firehose's (`synthetic.firehose`, mapped by the real Jetstream
mapping), in its eight languages. Searches are drawn from the same corpus, the way
tenants write them: most watch a brand or a name that few posts carry (here: invented
words no post carries, alone, ORed, in a phrase, with AND NOT, NEAR/n, lang:, has:link,
or next to a common word), 0.3% a word, a phrase, a hashtag or a CJK word of the corpus
(whose few hundred words each recur in a few percent of the posts), and a fixed handful
have no required term at all (`costly_searches`: posts in none of six languages) and are
checked against every post. `matches_per_post` says what the rate was measured with:
each match is a search checked in full.

The figure is the median of five runs of `Matcher.match_many` over the same posts, in
batches of `BATCH` as the worker reads them, counted in the CPU time of the process (one
core; other processes on the machine do not count), after a first run reported apart
(`_cold`): the words of the posts are then folded for the first time, and the searches
anchored on rarities guessed from the keys alone until the matcher has sampled enough
posts to count them (it then anchors them again, a few thousand per batch).
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence
from typing import Any, Final

from hubbub.ingest.mapping.jetstream import JetstreamMapping
from hubbub.kernel.clock import SystemClock
from hubbub.kernel.events import PostPublished
from hubbub.listening.matching import Matcher, forget_pieces
from hubbub.listening.query import RUNS, folded, parse, terms_of
from hubbub.synthetic.corpus import HASHTAGS, LANGUAGES, SENTENCES
from hubbub.synthetic.firehose import FirehoseSpec, generate_firehose

BATCH: Final = 1_000
RUNS_MEASURED: Final = 5
COSTLY: Final = 5
SHARE_OF_CORPUS_SEARCHES: Final = 0.003
"""Searches whose terms the generated posts carry; the others watch rarer names."""
_SYLLABLES: Final = ("ka", "lo", "mi", "zu", "ra", "ven", "tor", "bri", "sol", "nex", "qua")


def generated_posts(count: int, seed: int = 0) -> list[PostPublished]:
    """`count` posts of the generated firehose, as the ingest mapping turns them out."""
    mapping = JetstreamMapping(SystemClock(), 1 << 20)
    posts: list[PostPublished] = []
    spec = FirehoseSpec(events=count * 20, pages=max(1000, count // 5), seed=seed)
    batch: list[bytes] = []
    for line in generate_firehose(spec):
        batch.append(line)
        if len(batch) == 10_000:
            posts += _posts_of(mapping, batch)
            batch = []
            if len(posts) >= count:
                return posts[:count]
    return [*posts, *_posts_of(mapping, batch)][:count]


def _posts_of(mapping: JetstreamMapping, lines: list[bytes]) -> list[PostPublished]:
    mapped = mapping.map(mapping.decode(lines, "bench"), {}, "bench")
    return [event for event in mapped.events if type(event) is PostPublished]


class _Vocabulary:
    """The words, CJK words and hashtags of the corpus, by language."""

    def __init__(self) -> None:
        self.words: dict[str, list[str]] = {}
        self.fragments: list[str] = []
        for lang, sentences in SENTENCES.items():
            terms = [term for sentence in sentences for term in terms_of(folded(sentence))]
            # Short words are mostly articles and particles, which nobody watches.
            words = [term for term in terms if not RUNS.fullmatch(term) and len(term) > 3]
            self.words[lang] = words or terms
            for run in (term for term in terms if RUNS.fullmatch(term) and len(term) > 1):
                self.fragments.extend(run[start : start + 2] for start in range(len(run) - 1))
        self.tags = [tag for tags in HASHTAGS.values() for tag in tags]


def search_texts(count: int, seed: int = 0) -> list[str]:
    """`count` query texts: `COSTLY` without a required term, a share over the corpus's
    terms, the rest over invented brand names."""
    rng = random.Random(seed)
    vocabulary = _Vocabulary()
    texts = [_costly_search(rng) for _ in range(min(COSTLY, count))]
    while len(texts) < count:
        if rng.random() < SHARE_OF_CORPUS_SEARCHES:
            texts.append(_corpus_search(rng, vocabulary))
        else:
            texts.append(_brand_search(rng, vocabulary))
    return texts


def _costly_search(rng: random.Random) -> str:
    """Posts in none of several languages (the other languages, and posts without one)."""
    excluded = rng.sample(LANGUAGES, 6)
    return " AND ".join(f"NOT lang:{lang}" for lang in excluded)


def _brand(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) + str(
        rng.randint(0, 999)
    )


def _brand_search(rng: random.Random, vocabulary: _Vocabulary) -> str:
    brand, other = _brand(rng), _brand(rng)
    word = rng.choice(vocabulary.words["en"])
    shapes = (
        f"{brand}",
        f"{brand} OR {other} OR #{brand}",
        f'"{brand} {word}" OR @{brand}',
        f"({brand} OR {other}) AND NOT {word}",
        f"{brand} lang:{rng.choice(LANGUAGES)}",
        f"{brand} NEAR/3 {word}",
        f"#{brand} has:link",
        f"{word} {brand}",
    )
    return rng.choice(shapes)


def _corpus_search(rng: random.Random, vocabulary: _Vocabulary) -> str:
    lang = rng.choice(LANGUAGES)
    words = vocabulary.words[lang]
    first, second = rng.choice(words), rng.choice(words)
    shapes = (
        f"{first}",
        f'"{first} {second}"',
        f"{first} OR {second}",
        f"{first} AND NOT {second}",
        f"#{rng.choice(vocabulary.tags)}",
        f"{first} lang:{lang}",
        f"{first} NEAR/4 {second}",
        f"{rng.choice(vocabulary.fragments)}",
        f"{first} is:reply",
    )
    return rng.choice(shapes)


def _rate(matcher: Matcher, posts: Sequence[PostPublished]) -> tuple[float, int]:
    """Posts matched per second of the process's CPU time (other processes on the machine
    do not count), and matches found, in one run."""
    found = 0
    started = time.process_time()
    for start in range(0, len(posts), BATCH):
        for keys in matcher.match_many(posts[start : start + BATCH]):
            found += len(keys)
    return len(posts) / (time.process_time() - started), found


def run_matching(searches: int, posts: int) -> dict[str, Any]:
    """Posts matched per second by `searches` saved searches: the first run (`cold`: every
    word folded for the first time, searches anchored on guesses) and the median of five
    runs after it (the steady state of a worker that has run a while)."""
    corpus = generated_posts(posts)
    forget_pieces()
    texts = search_texts(searches)
    queries = [parse(text) for text in texts]
    started = time.perf_counter()
    matcher = Matcher()
    for number, query in enumerate(queries):
        matcher.put(f"tenant{number % 100}\x00search{number}", query)
    indexed_s = time.perf_counter() - started
    cold, _ = _rate(matcher, corpus)
    runs = [_rate(matcher, corpus) for _ in range(RUNS_MEASURED)]
    return {
        "searches": searches,
        "posts": len(corpus),
        "posts_per_s": round(statistics.median(rate for rate, _ in runs)),
        "posts_per_s_cold": round(cold),
        "matches_per_post": round(runs[0][1] / len(corpus), 3),
        "costly_searches": len(matcher.costly()),
        "index_s": round(indexed_s, 2),
    }


def bench_matching(posts: int = 50_000) -> dict[str, Any]:
    """The figures `hubbub bench listening` reports for matching."""
    ten = run_matching(10_000, posts)
    hundred = run_matching(100_000, posts)
    return {
        "posts_per_s_10k_searches": ten["posts_per_s"],
        "posts_per_s_100k_searches": hundred["posts_per_s"],
        "posts_per_s_10k_searches_cold": ten["posts_per_s_cold"],
        "posts_per_s_100k_searches_cold": hundred["posts_per_s_cold"],
        "matches_per_post": ten["matches_per_post"],
        "matches_per_post_100k_searches": hundred["matches_per_post"],
        "costly_searches": ten["costly_searches"],
        "posts": ten["posts"],
        "index_s_100k_searches": hundred["index_s"],
    }
