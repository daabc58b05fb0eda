"""What a crawl loads and keeps: components switched off are not even imported."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import weakref

from scrapy.settings import default_settings

from tests.conftest import ROOT

SWITCHED_OFF = {
    "EXTENSIONS": {
        "scrapy.extensions.telnet.TelnetConsole",
        "scrapy.extensions.remote_control.RemoteControl",
    },
    "DOWNLOADER_MIDDLEWARES": {"scrapy.downloadermiddlewares.cookies.CookiesMiddleware"},
}
# what those would import (0.14 s of a crawl's start-up)
HEAVY = ("aiohttp", "twisted.conch", "tldextract")


def test_components_switched_off_are_not_imported():
    # every component Scrapy would build, loaded as Scrapy loads it, in a fresh interpreter
    code = f"""
import json, sys
from scrapy.utils.misc import load_object
from crawler.config import project_settings
settings = project_settings()
found = {{}}
for name in {sorted(SWITCHED_OFF)!r}:
    found[name] = sorted(settings.get_component_priority_dict_with_base(name))
    for path in found[name]:
        load_object(path)
    found[name + " replaced"] = sorted(k for k, v in settings[name].items() if v is None)
found["imported"] = sorted(m for m in {HEAVY!r} if m in sys.modules)
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    assert found.pop("imported") == []
    for name, off in SWITCHED_OFF.items():
        scrapy_own = set(getattr(default_settings, f"{name}_BASE"))
        assert off <= scrapy_own  # still Scrapy's names: the test checks something
        assert not off & set(found[name])
        # everything else of Scrapy's is still there, but for what the project replaces
        assert scrapy_own - off - set(found[f"{name} replaced"]) <= set(found[name])


def test_a_crawl_collects_garbage_less_often_and_gives_the_collector_back():
    from crawler.runner import CRAWL_GC_THRESHOLD, crawl_gc

    class Node:
        other: Node

    before, frozen = gc.get_threshold(), gc.get_freeze_count()
    with crawl_gc():
        assert gc.get_threshold() == (CRAWL_GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > frozen  # start-up's objects are set apart
        # a cycle made during the crawl is still collected
        first, second = Node(), Node()
        first.other, second.other = second, first
        ref = weakref.ref(first)
        del first, second
        gc.collect()
        assert ref() is None
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
