"""Settings of the example project: the session pool is on for every spider (through the add-on)."""

BOT_NAME = "shop"
SPIDER_MODULES = ["shop.spiders"]
NEWSPIDER_MODULE = "shop.spiders"

ROBOTSTXT_OBEY = False
TELNETCONSOLE_ENABLED = False

# The session pool: one add-on line enables the middleware and the extension.
ADDONS = {"scrapy_sessionpool.Addon": 300}
SESSIONPOOL_BAN_PATTERNS = [r"Please complete the captcha"]
SESSIONPOOL_USER_AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1",
]
# SESSIONPOOL_PROXIES = "proxies.txt"  # one proxy URL per line; the demo passes its own with -s

# Politeness: with proxy slots on (the default), these apply to each (site, exit IP) pair.
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 4
DOWNLOAD_DELAY = 0.1

RETRY_TIMES = 2
LOG_LEVEL = "INFO"
LOGSTATS_INTERVAL = 10
SESSIONPOOL_LOG_INTERVAL = 10
