"""One spider per outlet; their shared behaviour is in `base`."""
