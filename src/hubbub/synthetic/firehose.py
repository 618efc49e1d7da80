"""A synthetic Bluesky Jetstream (v1 JSON) firehose for tests, demos and benchmarks.

The stream mimics production traffic: the mix of collections and operations, Zipf-shaped
page popularity, multilingual text with correct UTF-8 facet offsets, and deletes that
always point at a record created earlier in the same stream by the same account. The
output depends only on the ``FirehoseSpec``: the same spec yields byte-identical lines.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final
from zoneinfo import ZoneInfo

import msgspec

from hubbub.kernel.bluesky import FOLLOW, LIKE, POST, PROFILE, REPOST
from hubbub.synthetic.corpus import (
    BIOS,
    HASHTAGS,
    LANGUAGE_WEIGHTS,
    LANGUAGES,
    LINKS,
    SENTENCES,
    SENTENCES_WITH_SIZE,
    Link,
    TextBuilder,
)
from hubbub.synthetic.ids import (
    TID_PAIRS,
    base32_text,
    commit_tids_encoder,
    iso_formatter,
    mix30,
    page_clock_pair,
    page_did,
    strong_ref,
    tid,
)
from hubbub.synthetic.popularity import ZipfRanks, cumulative_weights
from hubbub.synthetic.population import page, page_lang

_Json = dict[str, Any]


_OLD_POST_MEMO_LIMIT: Final = 1 << 17
_PROGRESS_EVERY: Final = 10_000

_ZIPF_EXPONENT: Final = 1.1
_LATEST_POSTS_KEPT: Final = 1 << 16
_RECENT_RECORDS: Final = 4096
_OLD_POSTS_PER_PAGE: Final = 8
_MIN_OLD_POST_AGE_US: Final = 3_600 * 1_000_000
_OLD_POST_MAX_AGE_US: Final = 30 * 86_400 * 1_000_000
_FIRST_SEQ: Final = 31_527_015_470
# Measured on the production sample: identity/account times are a few tens of ms older
# than time_us.
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
    rhythm: Rhythm | None = None
    """A planted daily rhythm of engagement (benchmarks of the best time to post); none by
    default, and then the stream is the same as before rhythms existed."""


@dataclass(frozen=True)
class Rhythm:
    """Posts created in the ``peaks`` of each local day (half-hour slots 0..47 in ``zone``)
    draw ``share`` of all likes, on top of the likes every post draws by popularity."""

    zone: str
    peaks: tuple[int, ...]
    share: float = 0.3


def generate_firehose(spec: FirehoseSpec) -> Iterator[bytes]:
    """Yield one JSON line (bytes, no trailing newline) per event.

    Raises ValueError at once, not on first iteration, for a spec that makes no sense.
    """
    if spec.events < 0 or spec.pages < 1 or spec.rate_per_s < 1:
        raise ValueError(f"invalid firehose spec: {spec}")
    return _Firehose(spec).lines()


def generate_population(spec: FirehoseSpec) -> Iterator[bytes]:
    """Yield two JSON lines per account of the population, in account order: its
    identity (the handle) and its profile (the display name), `spec.start_us` on, a
    microsecond apart. Pushed before a firehose, they stand for a platform long in
    service, which has seen every account already; `spec.events` is not used."""
    if spec.pages < 1:
        raise ValueError(f"invalid firehose spec: {spec}")
    return _Firehose(spec).introductions()


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


class _Firehose:
    """State of one generated stream: clock, population, recent records to refer to."""

    _INACTIVE_STATUSES: Final = ("deactivated", "deactivated", "deleted", "takendown", "suspended")

    def __init__(self, spec: FirehoseSpec) -> None:
        self._spec = spec
        self._random = random.Random(spec.seed).random
        self._pages = spec.pages
        self._zipf = ZipfRanks(spec.pages, _ZIPF_EXPONENT)
        self._zipf_rank = self._zipf.rank
        self._commit_tids = commit_tids_encoder()
        self._iso = iso_formatter()
        self._random_bytes = random.Random(f"cid:{spec.seed}").randbytes
        self._step_us = 1_000_000 / spec.rate_per_s
        self._seq = _FIRST_SEQ
        self._old_posts: dict[int, str] = {}
        self._latest_posts: list[str | None] = [None] * min(spec.pages, _LATEST_POSTS_KEPT)
        self._likes, self._reposts = _Recent(self._random), _Recent(self._random)
        self._follows, self._posts = _Recent(self._random), _Recent(self._random)
        self._lang_cumulative = cumulative_weights(LANGUAGE_WEIGHTS)
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
        self._mix_cumulative = cumulative_weights([weight for weight, _ in mix])
        self._handlers = [handler for _, handler in mix]
        self._rhythm = spec.rhythm
        self._zone = ZoneInfo(spec.rhythm.zone) if spec.rhythm else None
        self._peak_posts = _Recent(self._random)

    def lines(self) -> Iterator[bytes]:
        """Encoded events in stream order; time_us strictly increases, ~1e6/rate_per_s apart.

        Each handler returns the finished JSON line of one event relayed at ``now``.
        """
        random_unit, handlers, mix = self._random, self._handlers, self._mix_cumulative
        bisect_left = bisect.bisect_left
        half_step = self._step_us / 2
        now = self._spec.start_us
        for _ in range(self._spec.events):
            now += int(half_step + 2 * half_step * random_unit() + 0.5) or 1  # rounded:
            # truncated, the steps would average half a µs short (0.5% at 10,000/s)
            yield handlers[bisect_left(mix, random_unit())](now)

    def introductions(self) -> Iterator[bytes]:
        now = self._spec.start_us
        for author in range(self._pages):
            yield self._identity(author, now + 1)
            yield self._encode(
                self._created(author, now + 2, PROFILE, self._profile_record(author, now), "self")
            )
            now += 2

    # identifiers and time

    def _cid(self) -> str:
        """The next content id of a record created in the stream."""
        return "bafyrei" + base32_text(self._random_bytes(39))

    def _blob_cid(self) -> str:
        """The next content id of a blob (an image) referenced in the stream."""
        return "bafkrei" + base32_text(self._random_bytes(39))

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
            "rev": self._commit_tids(now, page_clock_pair(author))[0],
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
        rev, new_rkey = self._commit_tids(now, page_clock_pair(author))
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
        age = _MIN_OLD_POST_AGE_US + mix30(key) * 997 % _OLD_POST_MAX_AGE_US
        rkey = tid(self._spec.start_us - age, page_clock_pair(author))
        return strong_ref(self._cid(), f"at://{page_did(author)}/{POST}/{rkey}")

    def _engagement(
        self, actor: int, now: int, collection: str, record_members: str
    ) -> tuple[bytes, str, str]:
        """The line, rkey and cid of a like, repost or follow create.

        These make up ~85% of the stream, so the line is formatted directly instead of
        building four dicts for msgspec: measured, the generator runs ~1.5x faster. Every
        value interpolated is a did, TID, CID, timestamp or JSON made here, none of which
        needs escaping. ``record_members`` are the record's members after createdAt.
        """
        rev, rkey = self._commit_tids(now, TID_PAIRS[(actor * 613 + 5) & 1023])
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
        members = f'"subject":{self._liked_post()}'
        if self._random() < _LIKE_VIA_REPOST and self._reposts.items:
            members = f'{members},"via":{self._reposts.pick()[2]}'
        line, rkey, _ = self._engagement(actor, now, LIKE, members)
        self._likes.remember((actor, rkey), now)
        return line

    def _liked_post(self) -> str:
        """The subject of a like: by popularity, or under a rhythm sometimes a post
        created in a peak slot (the random draw is made only under a rhythm, so a stream
        without one is unchanged)."""
        rhythm = self._rhythm
        if rhythm is not None and self._peak_posts.items and self._random() < rhythm.share:
            return str(self._peak_posts.pick()[0])
        return self._subject_post()

    def _in_peak(self, now: int) -> bool:
        """Whether `now` falls in one of the rhythm's peak half-hours, local time."""
        if self._rhythm is None or self._zone is None:
            return False
        local = datetime.fromtimestamp(now / 1e6, self._zone)
        return local.hour * 2 + local.minute // 30 in self._rhythm.peaks

    def _repost_created(self, now: int) -> bytes:
        actor = int(self._random() * self._pages)
        line, rkey, cid = self._engagement(actor, now, REPOST, f'"subject":{self._subject_post()}')
        ref = strong_ref(cid, f"at://{page_did(actor)}/{REPOST}/{rkey}")
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
        ref = strong_ref(commit["cid"], f"at://{event['did']}/{POST}/{commit['rkey']}")
        self._posts.remember((author, commit["rkey"], ref, root or ref), now)
        if author < len(self._latest_posts):
            self._latest_posts[author] = ref
        if self._in_peak(now):
            self._peak_posts.remember((ref,), now)
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
            return page_lang(author)
        return LANGUAGES[bisect.bisect_left(self._lang_cumulative, self._random())]

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

    def _post_text(self, lang: str) -> tuple[str, list[_Json], Link | None]:
        """Text made of sentences, mentions, hashtags and a link, with byte-exact facets."""
        random_unit = self._random
        text = TextBuilder()
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
            tags = HASHTAGS[lang]
            tag = tags[int(random_unit() * len(tags))]
            text.add(" ")
            text.add_facet("#" + tag, {"$type": _FACET_TAG, "tag": tag})
        link = None
        if random_unit() < _LINKS_PER_POST:
            link = LINKS[int(random_unit() * len(LINKS))]
            text.add(" ")
            text.add_facet(link[1], {"$type": _FACET_LINK, "uri": link[0]})
        return "".join(text.parts), text.facets, link

    def _sentence(self, lang: str) -> tuple[str, int]:
        sentences = SENTENCES_WITH_SIZE[lang]
        return sentences[int(self._random() * len(sentences))]

    def _mention(self, text: TextBuilder) -> None:
        mentioned = page(self._popular())
        text.add_facet("@" + mentioned.handle, {"$type": _FACET_MENTION, "did": mentioned.did})

    def _embed(self, link: Link | None, lang: str) -> _Json | None:
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
        sentences = SENTENCES[lang]
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
        bios = BIOS[about.lang]
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
        return self._identity(self._actor(), now)

    def _identity(self, author: int, now: int) -> bytes:
        about = page(author)
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
