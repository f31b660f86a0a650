"""The README renders, and documents every setting and meta key."""

from __future__ import annotations

import re
from pathlib import Path

import docutils.core
import docutils.nodes

from scrapy_sessionpool.settings import _documented

README = (Path(__file__).resolve().parent.parent / "README.rst").read_text(encoding="utf-8")


def test_readme_renders_without_warnings():
    docutils.core.publish_doctree(README, settings_overrides={"report_level": 2, "halt_level": 2})


#: The settings the README's Settings section documents: ``SESSIONPOOL_X`` (default ``...``).
DOCUMENTED = re.findall(r"^``(SESSIONPOOL_\w+)`` \(default ", README, re.MULTILINE)


def test_every_setting_is_documented_with_its_default():
    for name in _documented():
        assert name in DOCUMENTED, f"{name} is not documented"


def test_every_documented_setting_is_in_the_table_once():
    assert sorted(DOCUMENTED) == _documented()


def test_every_setting_the_readme_names_is_in_the_table():
    named = set(re.findall(r"\bSESSIONPOOL_[A-Z][A-Z_]*\b", README))
    assert named - set(_documented()) == set()


def test_the_readme_lists_what_a_named_pool_may_override():
    from scrapy_sessionpool.settings import TABLE

    sentence = re.search(r"^``SESSIONPOOL_POOLS`` may override (.+?);", README, re.MULTILINE | re.DOTALL).group(1)
    assert re.findall(r"``(\w+)``", sentence) == [name for name, row in TABLE.items() if row.per_pool]


def test_every_meta_key_is_documented():
    from scrapy_sessionpool import meta

    keys = [v for k, v in vars(meta).items() if k.startswith("META_")]
    for key in keys:
        assert re.search(rf"^``{key}``$", README, re.MULTILINE), f"{key} is not documented"


def python_snippets() -> list[str]:
    """The ``.. code-block:: python`` blocks of the README."""
    doctree = docutils.core.publish_doctree(README, settings_overrides={"report_level": 4})
    return [
        node.astext() for node in doctree.findall(docutils.nodes.literal_block) if "python" in node.get("classes", [])
    ]


def test_every_python_snippet_runs(tmp_path, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    snippets = python_snippets()
    assert len(snippets) >= 6
    monkeypatch.chdir(tmp_path)  # the store examples write their files here
    for code in snippets:
        # in a thread of its own: the asyncio example runs its own event loop, the reactor owns this one
        with ThreadPoolExecutor(1) as executor:
            executor.submit(exec, compile(code, "README.rst", "exec"), {}).result()


def test_the_apify_example_saves_and_reopens_the_pool(tmp_path, monkeypatch, capsys):
    from scrapy_sessionpool import open_session_pool
    from scrapy_sessionpool.stores import FileStore

    monkeypatch.chdir(tmp_path)
    code = next(c for c in python_snippets() if "my-session-pool" in c)
    exec(compile(code, "README.rst", "exec"), {})
    assert capsys.readouterr().out.splitlines()[0] == "2 1"
    with open_session_pool(store=FileStore("my-sessions"), persist_state_key="my-session-pool") as pool:
        assert pool.usable_sessions_count == 2 and pool.retired_sessions_count == 1


def test_the_settings_snippets_enable_the_pool():
    from scrapy.utils.test import get_crawler

    for code in python_snippets()[:2]:
        namespace: dict = {}
        exec(code, namespace)
        settings = {k: v for k, v in namespace.items() if k.isupper()}
        crawler = get_crawler(settings_dict={**settings, "SESSIONPOOL_PERSIST_STATE": False})
        assert crawler.settings.getbool("SESSIONPOOL_ENABLED")
        names = [type(m).__name__ for m in crawler.extensions.middlewares]
        assert "SessionPoolExtension" in names


def test_the_ban_policy_snippet_works():
    from scrapy import Request
    from scrapy.http import TextResponse

    from scrapy_sessionpool.core.verdict import VerdictKind
    from scrapy_sessionpool.settings import PoolSettings

    code = next(c for c in python_snippets() if "class ShopPolicy" in c)
    namespace: dict = {}
    exec(code, namespace)
    policy = namespace["ShopPolicy"](PoolSettings())
    request = Request("http://shop.example/api")
    body = b'{"error":"login required"}'
    verdict = policy.response_verdict(request, TextResponse(request.url, body=body, request=request))
    assert (verdict.kind, verdict.reason) == (VerdictKind.SESSION_BLOCKED, "login_required")


def test_every_documented_default_is_the_default():
    import ast

    from scrapy.settings import Settings

    from scrapy_sessionpool.settings import PoolSettings

    settings = Settings({"SESSIONPOOL_ENABLED": False})
    cfg = PoolSettings.from_settings(settings)
    for name in _documented():
        written = re.search(rf"^``{name}`` \(default ``(.+?)``\)", README, re.MULTILINE).group(1)
        value = getattr(cfg, name.removeprefix("SESSIONPOOL_").lower())
        if written == "CONCURRENT_REQUESTS":
            assert value == settings.getint("CONCURRENT_REQUESTS"), name
        elif isinstance(value, type):
            assert value.__name__ == written, name
        elif isinstance(value, tuple) and value and all(isinstance(v, type) for v in value):
            assert ", ".join(v.__name__ for v in value) == written, name
        else:
            documented = ast.literal_eval(written)
            if isinstance(value, frozenset):
                value = sorted(value)
            assert (list(value) if isinstance(value, tuple) else value) == documented, name
