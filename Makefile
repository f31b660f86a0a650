# make demo   - create the virtualenv, install, run the demo (example_project/run_demo.py)
# make demo-browser - the shop behind a JavaScript challenge: sessions pass it in their
#               own browser (scrapy-playwright, Debian's chromium), then crawl over HTTP
# make demo-workers - two scrapy-redis workers share one queue and one pool
#               (example_project/run_workers.py; starts its own redis-server)
# make lint   - ruff (lint and format check) and mypy (strict for the pure core)
# make test   - make lint, then the suite on the newest
#               and on the oldest supported Scrapy
# make bench  - run the benchmarks
# make bench-blocks - the block matrix: the pool, plain Scrapy and Crawlee for Python
#               (about 45 minutes; BENCH_ARGS='--cells session/ --items 300' for a part)

PYTHON ?= python3
VENV ?= .venv
VENV_MIN ?= .venv-min
VENV_CRAWLEE ?= .venv-crawlee
BENCH_ARGS ?=
# the code bench-crawl compares with ("prev"): before session cookies went through Scrapy's cookie code
BENCH_PREVIOUS ?= 0e67e15
SCRAPY_MIN ?= 2.13.4
PYTEST_ARGS ?=
DEMO_ARGS ?=

PHONY_BENCH = bench-blocks
.PHONY: demo demo-workers lint test test-latest test-min bench $(PHONY_BENCH) bench-core bench-store bench-middleware bench-crawl bench-pool-size bench-kill bench-soak bench-outage bench-workers bench-logins bench-browser demo-browser clean

test: lint test-latest test-min

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

demo: $(VENV)/.installed
	$(VENV)/bin/python example_project/run_demo.py $(DEMO_ARGS)

demo-browser: $(VENV)/.installed
	$(VENV)/bin/python example_project/run_browser.py $(DEMO_ARGS)

demo-workers: $(VENV)/.installed
	$(VENV)/bin/python example_project/run_workers.py $(DEMO_ARGS)

test-latest: $(VENV)/.installed
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

test-min: $(VENV_MIN)/.installed
	$(VENV_MIN)/bin/python -m pytest $(PYTEST_ARGS)

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --disable-pip-version-check -e '.[test,lint]'
	$(VENV)/bin/python -c "import scrapy; print('Scrapy', scrapy.__version__, 'in $(VENV)')"
	touch $@

$(VENV_MIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV_MIN)
	$(VENV_MIN)/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' 'scrapy==$(SCRAPY_MIN)'
	$(VENV_MIN)/bin/python -c "import scrapy; print('Scrapy', scrapy.__version__, 'in $(VENV_MIN)')"
	touch $@

bench: bench-core bench-store bench-middleware bench-crawl bench-pool-size bench-kill bench-soak bench-outage bench-workers bench-logins bench-browser

bench-core: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_core.py

bench-store: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_store.py

bench-middleware: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_middleware.py --previous $(BENCH_PREVIOUS)

bench-browser: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_browser.py $(BENCH_ARGS)

bench-logins: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_logins.py $(BENCH_ARGS)

bench-workers: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_workers.py $(BENCH_ARGS)

bench-crawl: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_crawl.py --previous $(BENCH_PREVIOUS) $(BENCH_ARGS)

bench-pool-size: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_pool_size.py

bench-kill: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_kill.py

bench-soak: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_soak.py

bench-outage: $(VENV)/.installed
	$(VENV)/bin/python benchmarks/bench_outage.py

bench-blocks: $(VENV)/.installed $(VENV_CRAWLEE)/.installed
	$(VENV)/bin/python benchmarks/bench_blocks.py --crawlee-python $(VENV_CRAWLEE)/bin/python $(BENCH_ARGS)

$(VENV_CRAWLEE)/.installed:
	$(PYTHON) -m venv $(VENV_CRAWLEE)
	$(VENV_CRAWLEE)/bin/python -m pip install -q --disable-pip-version-check 'crawlee[parsel]'
	touch $@

clean:
	rm -rf $(VENV) $(VENV_MIN) $(VENV_CRAWLEE) build *.egg-info
