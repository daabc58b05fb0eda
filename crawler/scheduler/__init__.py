"""The scheduler service: every enabled source crawled on its own interval, in child processes,
with a lease per source in the archive so that a source never runs twice at once."""
