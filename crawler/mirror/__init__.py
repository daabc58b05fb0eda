"""A local HTTP mirror of the outlets' sites, for offline crawls and tests."""

from crawler.mirror.server import (
    SITE_NAMES,
    SITES_DIR,
    MirrorServer,
    MirrorSet,
    RequestRecord,
)

__all__ = ["SITES_DIR", "SITE_NAMES", "MirrorServer", "MirrorSet", "RequestRecord"]
