"""Signals of this project (sent through the crawler's signal manager)."""

# A page could not be archived: kwargs url, reason. Recorded in the crawl run's error log.
page_error = object()
