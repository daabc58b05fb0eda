"""One story across outlets: copies of one text (reprints), stories (articles about the same
event) and the feed of edits, kept in the archive database as articles are stored.

- `signatures`: word shingles, MinHash and LSH band keys of an article's body;
- `terms`: the weighted term vectors stories are clustered by;
- `index`: maintenance on store, reparse and WARC import, and `rebuild`;
- `queries`: what the commands and pages read (stories, a story's articles, copies, changes).
"""

from crawler.stories.index import index_article, rebuild

__all__ = ["index_article", "rebuild"]
