"""Record mode: proxy to a real upstream and save each response as a cassette.

``proxy`` relays requests and WebSockets through one upstream session and saves recordings;
``scrub`` takes keys out of everything written.
"""

from .proxy import FORWARDED_REQUEST_HEADERS, HEADER_ALLOWLIST, Recorder, upstream_session
from .scrub import REDACTED, Scrubber

__all__ = [
    "FORWARDED_REQUEST_HEADERS",
    "HEADER_ALLOWLIST",
    "REDACTED",
    "Recorder",
    "Scrubber",
    "upstream_session",
]
