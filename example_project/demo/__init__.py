"""A local, guarded demo shop and forwarding proxies, for trying scrapy-sessionpool without the internet."""
