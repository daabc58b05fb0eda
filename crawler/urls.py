"""Canonical URLs: the key under which an article is archived once."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Parameters that say how a reader arrived, not what they read.
TRACKING_PARAMS = frozenset(
    {
        "fbclid",
        "gclid",
        "dclid",
        "msclkid",
        "yclid",
        "mc_cid",
        "mc_eid",
        "igshid",
        "_ga",
        "ref_src",
        "cmpid",
        "at_medium",
        "at_campaign",
    }
)


def is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered.startswith("utm_") or lowered in TRACKING_PARAMS


def canonicalize(url: str) -> str:
    """Lower-cased scheme and host, default port and fragment dropped, tracking params removed.

    The rest of the query string is kept in its order: on some outlets (`/?bbs=40224`) it is
    the article's identity.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    port = parts.port
    if port and not ((scheme == "http" and port == 80) or (scheme == "https" and port == 443)):
        host = f"{host}:{port}"
    query = [
        (k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not is_tracking(k)
    ]
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))


def same_site(url: str, other: str) -> bool:
    """True when both URLs are on the same host (a rel=canonical elsewhere is not trusted)."""
    return (urlsplit(url).hostname or "").lower() == (urlsplit(other).hostname or "").lower()
