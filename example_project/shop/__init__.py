"""An example Scrapy project that crawls the guarded demo shop with scrapy-sessionpool."""
