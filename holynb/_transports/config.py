"""TLS and proxy settings, resolved once when a client is created (identical for every transport).

``verify``: True (the system's CAs, or ``SSL_CERT_FILE`` / ``SSL_CERT_DIR`` as set *now*), False
(no checking), a CA bundle file or directory, or a ready ``ssl.SSLContext``.
``proxy``: a URL for every request, or None to follow ``HTTPS_PROXY`` / ``HTTP_PROXY`` /
``ALL_PROXY`` and ``NO_PROXY`` (either case) from the environment at client creation.
"""

from __future__ import annotations

import os
import ssl
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

from holynb._config import mask_url
from holynb._errors import ConfigError

__all__ = ["NetConfig", "ProxyPolicy", "make_ssl_context"]


def make_ssl_context(verify: bool | str | os.PathLike[str] | ssl.SSLContext) -> ssl.SSLContext:
    """The one SSL context of a client, from ``verify=`` and the environment."""
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if verify is True:
        # Read the variables now rather than relying on OpenSSL's defaults, which aiohttp's
        # import-time context froze: a variable set later (in a notebook) must still apply.
        cafile = os.environ.get("SSL_CERT_FILE") or None
        capath = os.environ.get("SSL_CERT_DIR") or None
        if cafile is None and capath is None:
            return ssl.create_default_context()
        return _context_from(cafile, capath, "SSL_CERT_FILE" if cafile else "SSL_CERT_DIR")
    if isinstance(verify, str | os.PathLike):
        path = os.fspath(verify)
        if os.path.isdir(path):
            return _context_from(None, path, "verify=")
        return _context_from(path, None, "verify=")
    raise ConfigError(
        f"verify= must be True, False, a CA bundle path or an ssl.SSLContext, got {verify!r:.60}."
    )


def _context_from(cafile: str | None, capath: str | None, source: str) -> ssl.SSLContext:
    where = cafile or capath
    if not where or not os.path.exists(where):
        raise ConfigError(f"The CA bundle {where!r} ({source}) does not exist.")
    try:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    except (ssl.SSLError, OSError, ValueError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        error = ConfigError(f"The CA bundle {where!r} ({source}) could not be loaded: {detail}.")
    raise error


@dataclass(frozen=True, slots=True)
class ProxyPolicy:
    """Which proxy (if any) a request to a given URL goes through."""

    explicit: str | None = None
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def resolve(cls, proxy: str | None) -> ProxyPolicy:
        """``proxy=`` if given, else the environment's proxy variables as they are now."""
        if proxy is not None:
            if not isinstance(proxy, str) or not proxy.startswith(
                ("http://", "https://")
            ):
                raise ConfigError(
                    f"proxy= must be an http:// or https:// URL, got {mask_url(str(proxy))!r}."
                )
            return cls(explicit=proxy)
        # getproxies() reads <scheme>_proxy in either case (lowercase wins) and no_proxy.
        env = {k: v for k, v in urllib.request.getproxies_environment().items() if v}
        return cls(env=env)

    def for_url(self, url: str) -> str | None:
        """The proxy URL for a request to ``url``, or None to connect directly."""
        if self.explicit is not None:
            return self.explicit
        if not self.env:
            return None
        parts = urllib.parse.urlsplit(url)
        scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
        proxy = self.env.get(scheme) or self.env.get("all")
        if not proxy:
            return None
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        if urllib.request.proxy_bypass_environment(host, self.env):
            return None
        if "://" not in proxy:
            proxy = f"http://{proxy}"
        return proxy


@dataclass(frozen=True, slots=True)
class NetConfig:
    """The network settings of one client: its SSL context and proxy policy."""

    ssl: ssl.SSLContext
    proxy: ProxyPolicy

    @classmethod
    def resolve(
        cls, verify: bool | str | os.PathLike[str] | ssl.SSLContext, proxy: str | None
    ) -> NetConfig:
        """Build both from the options and the environment, once."""
        return cls(ssl=make_ssl_context(verify), proxy=ProxyPolicy.resolve(proxy))
