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

__all__ = ["NetConfig", "ProxyPolicy", "TLSConfig"]


class TLSConfig:
    """The client's TLS trust: resolved (and checked) at client creation, built on first use.

    Loading the system's CA store takes tens of milliseconds, so the ``ssl.SSLContext`` is made
    when the first connection needs it — from the settings captured here, so a later change to
    ``SSL_CERT_FILE`` does not affect this client. An explicit CA bundle is loaded at once, so
    a bad one fails at creation.
    """

    __slots__ = ("_cafile", "_capath", "_source", "_context", "_insecure")

    def __init__(self, verify: bool | str | os.PathLike[str] | ssl.SSLContext) -> None:
        self._cafile: str | None = None
        self._capath: str | None = None
        self._source = ""
        self._context: ssl.SSLContext | None = None
        self._insecure = False
        if isinstance(verify, ssl.SSLContext):
            self._context = verify
        elif verify is False:
            self._insecure = True
        elif verify is True:
            # Read the variables now rather than relying on OpenSSL's defaults, which aiohttp's
            # import-time context froze: a variable set later (in a notebook) must still apply.
            self._cafile = os.environ.get("SSL_CERT_FILE") or None
            self._capath = os.environ.get("SSL_CERT_DIR") or None
            self._source = "SSL_CERT_FILE" if self._cafile else "SSL_CERT_DIR"
            _check_exists(self._cafile or self._capath, self._source)
        elif isinstance(verify, str | os.PathLike):
            path = os.fspath(verify)
            _check_exists(path, "verify=")
            if os.path.isdir(path):
                self._capath = path
            else:
                self._cafile = path
            self._source = "verify="
            self._context = self._build()
        else:
            raise ConfigError(
                "verify= must be True, False, a CA bundle path or an ssl.SSLContext, "
                f"got {verify!r:.60}."
            )

    @property
    def context(self) -> ssl.SSLContext:
        """The one SSL context of the client (made on first use)."""
        if self._context is None:
            self._context = self._build()
        return self._context

    def _build(self) -> ssl.SSLContext:
        if self._insecure:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        if self._cafile is None and self._capath is None:
            return ssl.create_default_context()
        where = self._cafile or self._capath
        try:
            return ssl.create_default_context(cafile=self._cafile, capath=self._capath)
        except (ssl.SSLError, OSError, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            error = ConfigError(
                f"The CA bundle {where!r} ({self._source}) could not be loaded: {detail}."
            )
        raise error


def _check_exists(where: str | None, source: str) -> None:
    if where is not None and not os.path.exists(where):
        raise ConfigError(f"The CA bundle {where!r} ({source}) does not exist.")


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
    """The network settings of one client: its TLS trust and proxy policy."""

    tls: TLSConfig
    proxy: ProxyPolicy

    @classmethod
    def resolve(
        cls, verify: bool | str | os.PathLike[str] | ssl.SSLContext, proxy: str | None
    ) -> NetConfig:
        """Resolve both from the options and the environment, once."""
        return cls(tls=TLSConfig(verify), proxy=ProxyPolicy.resolve(proxy))
