"""JMA disaster-prevention XML: the feed and bulletins that trigger on-demand check-ins."""

from service.jma.parser import (
    MAX_DOCUMENT_BYTES,
    Bulletin,
    BulletinError,
    BulletinKind,
    BulletinStatus,
    Earthquake,
    FeedEntry,
    InfoType,
    Intensity,
    TsunamiKind,
    parse_atom_feed,
    parse_bulletin,
)

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "Bulletin",
    "BulletinError",
    "BulletinKind",
    "BulletinStatus",
    "Earthquake",
    "FeedEntry",
    "InfoType",
    "Intensity",
    "TsunamiKind",
    "parse_atom_feed",
    "parse_bulletin",
]
