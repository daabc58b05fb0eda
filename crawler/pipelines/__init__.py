"""Item pipelines, one stage a module, in the order they run (see settings.ITEM_PIPELINES)."""
