"""The pure core: sessions, the pool, its strategies, cookie state, exits, the judge and verdicts.

Nothing here imports Scrapy or Twisted (``tests/test_imports.py`` checks it): the pool
works in a script or under another framework as it does in a crawl.
"""
