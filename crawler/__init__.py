"""A Scrapy crawler that keeps a versioned archive of news outlets."""

__version__ = "0.1.0"
