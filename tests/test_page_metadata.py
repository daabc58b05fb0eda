"""What a page declares about itself (crawler/extract.py), read as cheaply as it can be."""

from __future__ import annotations

import pytest
from scrapy.http import HtmlResponse, TextResponse

from crawler.extract import PageMetadata

URL = "https://news.example/world/2024/story/"
JSONLD = (
    '<script type="application/ld+json">'
    '{"@type": "NewsArticle", "headline": "From JSON-LD", "inLanguage": "fr"}</script>'
)


def page(html: str) -> PageMetadata:
    return PageMetadata(HtmlResponse(URL, body=html.encode(), encoding="utf-8"))


def test_canonical_is_the_first_canonical_link_with_an_href_wherever_it_stands():
    html = (
        '<html><head><link rel="canonical alternate" href="/not-this/">'
        '<link rel="canonical"><link rel="stylesheet" href="/style.css"></head>'
        '<body><p>text</p><link rel="canonical" href=" /world/story/ ">'
        '<link rel="canonical" href="/second/"></body></html>'
    )
    assert page(html).canonical == "https://news.example/world/story/"


def test_canonical_follows_the_pages_base_and_is_none_when_absent_or_empty():
    based = '<html><head><base href="https://cdn.news.example/x/"><link rel="canonical" href="y">'
    assert page(based + "</head></html>").canonical == "https://cdn.news.example/x/y"
    assert page('<html><head><link rel="canonical" href="  "></head></html>').canonical is None
    assert page("<html><head><title>t</title></head></html>").canonical is None


def test_a_json_body_is_refused_as_before():
    response = TextResponse(URL, body=b'{"canonical": "x"}', encoding="utf-8")
    with pytest.raises(ValueError, match="xpath"):
        _ = PageMetadata(response).canonical


def test_the_json_ld_is_parsed_only_when_a_field_needs_it():
    declared = page(f'<html lang="en-GB"><head>{JSONLD}</head><body></body></html>')
    assert declared.language == "en"
    assert "jsonld_article" not in vars(declared)  # <html lang> answered first
    assert declared.title == "From JSON-LD"
    assert "jsonld_article" in vars(declared)
    undeclared = page(f"<html><head>{JSONLD}</head><body></body></html>")
    assert undeclared.language == "fr"
