"""Poll JMA's Atom feed (eqvol.xml) and process the bulletins it announces.

- Entries are remembered in ``jma_feed_entry`` before anything is fetched, so a restart
  neither loses nor repeats one; the bulletin identity (see service.py) also makes a
  bulletin seen by both the feed and the push endpoint count once.
- Only the three kinds the policy understands (VXSE51, VXSE53, VTSE41) are fetched; the
  feed also carries volcano and other reports we do not need.
- Every failure (network, HTTP status, malformed XML, a bug) is logged with what failed and
  retried on later polls, up to MAX_ATTEMPTS; nothing here raises into the scheduler.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from service.jma import service as jma
from service.jma.models import MAX_REPORT_AGE_MAX_MINUTES, JmaFeedEntry
from service.jma.parser import (
    MAX_DOCUMENT_BYTES,
    BulletinError,
    FeedEntry,
    parse_atom_feed,
    parse_bulletin,
)

log = logging.getLogger(__name__)

SUPPORTED_TITLES: Final = frozenset(
    {"震度速報", "震源・震度に関する情報", "津波警報・注意報・予報a", "津波警報・注意報・予報"}
)
SUPPORTED_CODES: Final = ("VXSE51", "VXSE53", "VTSE41")
JMA_HOST: Final = "www.data.jma.go.jp"
MAX_ATTEMPTS: Final = 5
ENTRIES_PER_POLL: Final = 100
FETCH_TIMEOUT: Final = httpx.Timeout(15.0, connect=5.0)
TOO_OLD_TO_FETCH: Final = timedelta(minutes=MAX_REPORT_AGE_MAX_MINUTES + 60)
USER_AGENT: Final = "Mimamori welfare checks (JMA XML poller)"


class FetchError(Exception):
    """The document could not be fetched; the message says which URL and why."""


@dataclass
class PollResult:
    feed_ok: bool = False
    new_entries: int = 0
    processed: int = 0
    failed: int = 0
    results: list[jma.ProcessResult] = field(default_factory=list)


def is_supported(entry: FeedEntry) -> bool:
    """JMA titles its entries by the bulletin's Control/Title; the file name carries the
    data-type code, which is the fallback for a relay that retitles entries."""
    if entry.title.strip() in SUPPORTED_TITLES:
        return True
    path = urlsplit(entry.link_url).path
    return any(code in path for code in SUPPORTED_CODES)


def fetch(client: httpx.Client, url: str) -> bytes:
    """GET a document, refusing anything over the parser's size limit while streaming."""
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise FetchError(f"HTTP {response.status_code} from {url}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_DOCUMENT_BYTES:
                raise FetchError(f"{url} is too large ({declared} bytes)")
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > MAX_DOCUMENT_BYTES:
                    raise FetchError(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as exc:
        raise FetchError(f"{type(exc).__name__} fetching {url}: {exc}") from exc


def new_client() -> httpx.Client:
    return httpx.Client(
        timeout=FETCH_TIMEOUT, follow_redirects=True, headers={"User-Agent": USER_AGENT}
    )


def poll_feed(
    engine: Engine,
    *,
    feed_url: str,
    now_fn: Callable[[], datetime],
    client: httpx.Client | None = None,
) -> PollResult:
    """One poll: read the feed, remember new entries, process every entry not yet done.

    Entries left over from earlier polls (a fetch that failed, a crash) are retried even
    when the feed itself cannot be read this time.
    """
    own_client = client is None
    http = client or new_client()
    result = PollResult()
    try:
        try:
            entries = parse_atom_feed(fetch(http, feed_url))
        except (FetchError, BulletinError) as exc:
            log.warning(
                "JMA feed %s unusable this time: %s", feed_url, exc, extra={"event": "jma.feed"}
            )
        else:
            result.feed_ok = True
            supported = [entry for entry in entries if is_supported(entry)]
            result.new_entries = _remember(engine, supported, feed_url, now_fn())
        for row_id in _due_entries(engine):
            outcome = _process_entry(engine, row_id, http, now_fn)
            if outcome is None:
                result.failed += 1
            else:
                result.processed += 1
                result.results.append(outcome)
    finally:
        if own_client:
            http.close()
    return result


def _entry_key(entry_id: str) -> str:
    # Atom ids are short URNs or URLs; a pathological one is hashed rather than truncated,
    # so two long ids can never collide by sharing a prefix.
    if len(entry_id) <= 500:
        return entry_id
    return "sha256:" + hashlib.sha256(entry_id.encode()).hexdigest()


def _link_allowed(feed_url: str, link_url: str) -> bool:
    """Fetch bulletins only from the feed's own host or JMA's, so a tampered feed cannot
    make the server request internal URLs."""
    host = (urlsplit(link_url).hostname or "").lower()
    return host in {(urlsplit(feed_url).hostname or "").lower(), JMA_HOST}


def _remember(engine: Engine, entries: Iterable[FeedEntry], feed_url: str, now: datetime) -> int:
    unique: dict[str, FeedEntry] = {}
    for entry in entries:
        unique.setdefault(_entry_key(entry.id), entry)
    if not unique:
        return 0
    with Session(engine) as session:
        known = set(
            session.execute(
                select(JmaFeedEntry.entry_id).where(
                    JmaFeedEntry.entry_id.in_(list(unique))  # type: ignore[attr-defined]
                )
            ).scalars()
        )
    rows = [
        _entry_row(key, entry, feed_url, now) for key, entry in unique.items() if key not in known
    ]
    added = 0
    for row in rows:
        # One transaction per entry: a concurrent poller that inserted the same entry
        # costs us that row only.
        with Session(engine) as session:
            session.add(row)
            try:
                session.commit()
                added += 1
            except IntegrityError:
                session.rollback()
    return added


def _entry_row(key: str, entry: FeedEntry, feed_url: str, now: datetime) -> JmaFeedEntry:
    row = JmaFeedEntry(
        entry_id=key,
        url=entry.link_url[:1000],
        title=entry.title[:200],
        updated=entry.updated.astimezone(UTC),
        first_seen_at=now,
    )
    if row.updated < now - TOO_OLD_TO_FETCH:
        # No policy acts on a report this old (MAX_REPORT_AGE_MAX_MINUTES); a first poll
        # of a long feed should not fetch a day of history for nothing.
        row.processed_at = now
        row.last_error = "older than any policy's maximum report age; not fetched"
    elif not _link_allowed(feed_url, entry.link_url):
        row.gave_up_at = now
        row.last_error = f"link to another host refused: {entry.link_url}"
        log.warning(
            "JMA feed entry links to another host; not fetched: %s",
            entry.link_url,
            extra={"event": "jma.feed"},
        )
    return row


def _due_entries(engine: Engine) -> list[uuid.UUID]:
    with Session(engine) as session:
        return list(
            session.execute(
                select(JmaFeedEntry.id)
                .where(
                    JmaFeedEntry.processed_at.is_(None),  # type: ignore[union-attr]
                    JmaFeedEntry.gave_up_at.is_(None),  # type: ignore[union-attr]
                )
                .order_by(JmaFeedEntry.updated, JmaFeedEntry.first_seen_at)
                .limit(ENTRIES_PER_POLL)
            ).scalars()
        )


def _process_entry(
    engine: Engine, row_id: uuid.UUID, client: httpx.Client, now_fn: Callable[[], datetime]
) -> jma.ProcessResult | None:
    with Session(engine) as session:
        row = session.get(JmaFeedEntry, row_id)
        if row is None or row.processed_at is not None or row.gave_up_at is not None:
            return None
        if row.attempts >= MAX_ATTEMPTS:  # earlier attempts died with the process
            row.gave_up_at = now_fn()
            session.add(row)
            session.commit()
            log.error("JMA bulletin %s given up after %s attempts", row.url, row.attempts)
            return None
        # Counted before the work, so an entry that crashes the process is still given up
        # on after MAX_ATTEMPTS rather than retried forever.
        row.attempts += 1
        session.add(row)
        session.commit()
        url = row.url
    try:
        data = fetch(client, url)
        bulletin = parse_bulletin(data)
    except (FetchError, BulletinError) as exc:
        _failed(engine, row_id, str(exc), now_fn())
        return None
    except Exception as exc:  # a bug or a URL httpx refuses: this entry only, never the poll
        log.exception("JMA bulletin %s could not be fetched", url)
        _failed(engine, row_id, f"{type(exc).__name__}: {exc}", now_fn())
        return None
    try:
        outcome = jma.process_bulletin(
            engine, bulletin, now_fn=now_fn, source="feed", document=data
        )
    except Exception as exc:
        log.exception("JMA bulletin %s could not be processed", url)
        _failed(engine, row_id, f"{type(exc).__name__}: {exc}", now_fn())
        return None
    with Session(engine) as session:
        row = session.get(JmaFeedEntry, row_id)
        assert row is not None
        row.processed_at = now_fn()
        row.bulletin_id = outcome.bulletin_id
        row.last_error = None
        session.add(row)
        session.commit()
    return outcome


def _failed(engine: Engine, row_id: uuid.UUID, error: str, now: datetime) -> None:
    with Session(engine) as session:
        row = session.get(JmaFeedEntry, row_id)
        if row is None:
            return
        row.last_error = error[:2000]
        if row.attempts >= MAX_ATTEMPTS:
            row.gave_up_at = now
        session.add(row)
        session.commit()
        gave_up, attempts, url = row.gave_up_at is not None, row.attempts, row.url
    if gave_up:
        log.error(
            "JMA bulletin %s failed %s times; given up: %s",
            url,
            attempts,
            error,
            extra={"event": "jma.feed.gave_up"},
        )
    else:
        log.warning(
            "JMA bulletin %s failed (attempt %s of %s), retried on the next poll: %s",
            url,
            attempts,
            MAX_ATTEMPTS,
            error,
            extra={"event": "jma.feed.retry"},
        )
