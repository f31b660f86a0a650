"""The Scrapy add-on: ``ADDONS = {"scrapy_sessionpool.Addon": 300}`` enables everything."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

__all__ = ["Addon"]

MIDDLEWARE_PRIORITY = 650
EXTENSION_PRIORITY = 500


class Addon:
    def update_settings(self, settings: BaseSettings) -> None:
        from .extension import SessionPoolExtension
        from .middleware import SessionPoolMiddleware

        settings.set("SESSIONPOOL_ENABLED", True, "addon")
        settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", SessionPoolMiddleware, MIDDLEWARE_PRIORITY)
        settings.set_in_component_priority_dict("EXTENSIONS", SessionPoolExtension, EXTENSION_PRIORITY)
