"""The README renders, and documents every setting and meta key."""

from __future__ import annotations

import re
from pathlib import Path

import docutils.core

from scrapy_sessionpool.config import _documented

README = (Path(__file__).resolve().parent.parent / "README.rst").read_text(encoding="utf-8")


def test_readme_renders_without_warnings():
    docutils.core.publish_doctree(README,
                                  settings_overrides={"report_level": 2, "halt_level": 2})


def test_every_setting_is_documented_with_its_default():
    for name in _documented():
        assert re.search(rf"^``{name}`` \(default ", README, re.M), f"{name} is not documented"


def test_every_meta_key_is_documented():
    from scrapy_sessionpool import helpers

    keys = [v for k, v in vars(helpers).items() if k.startswith("META_")]
    for key in keys:
        assert re.search(rf"^``{key}``$", README, re.M), f"{key} is not documented"
