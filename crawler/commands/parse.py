"""`scrapy parse --spider SPIDER -c parse_article URL`: Scrapy's command, for trying a spider on
one page; nothing of it is recorded in the archive (no crawl run, no lease)."""

from __future__ import annotations

from typing import Any, ClassVar

from scrapy.commands.parse import Command as ScrapyParseCommand


class Command(ScrapyParseCommand):
    default_settings: ClassVar[dict[str, Any]] = {
        **ScrapyParseCommand.default_settings,
        "CRAWLER_RECORD_RUNS": False,
    }
