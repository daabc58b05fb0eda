"""The project's own `scrapy` commands (COMMANDS_MODULE): `crawl` with the exit status of the
run it recorded, `parse` that records no run."""
