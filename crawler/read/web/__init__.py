"""`crawler web`: the archive in a browser (search, articles and their history, the pages as
archived, the outlets' runs) and a JSON API, read-only, on SQLite or PostgreSQL."""
