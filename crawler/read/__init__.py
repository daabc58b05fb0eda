"""The read side of the archive: search, show, export, stats and WARC exchange."""
