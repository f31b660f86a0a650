"""Scrapy commands of scrapy-sessionpool."""
