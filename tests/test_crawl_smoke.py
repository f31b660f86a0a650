import pytest_twisted

from tests.crawling import make_crawler, stats


@pytest_twisted.inlineCallbacks
def test_smoke(site):
    crawler = make_crawler(settings={"SESSIONPOOL_MAX_POOL_SIZE": 2})
    yield crawler.crawl(urls=[site.url(f"/items/{i}") for i in range(10)])
    spider = crawler.spider
    print(stats(crawler), list(site.requests)[:5])
    assert len(spider.responses) == 10
