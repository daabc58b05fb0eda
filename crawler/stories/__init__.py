"""One story across outlets: copies of one text (reprints), stories (articles about the same
event) and the feed of edits, kept in the archive database as articles are stored.

- `signatures`: word shingles, MinHash and LSH band keys of an article's body;
- `terms`: the weighted term vectors stories are clustered by;
- `index`: maintenance on store, reparse and WARC import, and `rebuild`;
- `queries`: what the commands and pages read (stories, a story's articles, copies, changes).
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crawler.stories.index import index_article, rebuild

__all__ = ["index_article", "rebuild"]


def __getattr__(name: str) -> Any:
    """`index_article` and `rebuild`, imported when first asked for: what the query commands
    read (`queries`, `changes`) does not import the index's SQLAlchemy and NumPy."""
    if name in __all__:
        from crawler.stories import index

        return getattr(index, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
