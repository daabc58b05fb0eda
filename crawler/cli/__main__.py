"""`python -m crawler.cli`."""

from crawler.cli import main

main()
