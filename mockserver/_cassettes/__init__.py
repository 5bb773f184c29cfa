"""Cassettes: recorded responses replayed byte for byte with their timing.

``format`` is the file format (one JSON file per recorded response), ``store`` loads cassettes
and matches requests to them, ``convert`` serves a cassette over another transport and reads the
reply plan a recorded stream carries. The full guide is ``docs/cassettes.md``.
"""

from .convert import (
    cassette_reply,
    completion_from_messages,
    content_deltas,
    convert_frames,
    match_digest,
    reply_from_messages,
    sse_to_ws,
    ws_to_sse,
)
from .format import (
    FORMAT_VERSION,
    MATCH_PARAMS,
    SHIPPED_DIR,
    TRANSPORTS,
    Cassette,
    CassetteError,
    UnknownCassetteError,
    dump_cassette,
    load_cassette,
    parse_cassette,
    save_cassette,
)
from .store import CassetteStore, normalise_request

__all__ = [
    "FORMAT_VERSION",
    "MATCH_PARAMS",
    "SHIPPED_DIR",
    "TRANSPORTS",
    "Cassette",
    "CassetteError",
    "CassetteStore",
    "UnknownCassetteError",
    "cassette_reply",
    "completion_from_messages",
    "content_deltas",
    "convert_frames",
    "dump_cassette",
    "load_cassette",
    "match_digest",
    "normalise_request",
    "parse_cassette",
    "reply_from_messages",
    "save_cassette",
    "sse_to_ws",
    "ws_to_sse",
]
