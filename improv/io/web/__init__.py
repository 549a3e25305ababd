"""The live web page of a jam: ``improv jam --web [HOST:]PORT`` (server, feed, page)."""

from improv.io.web.server import WebServer, WebSettings, parse_address

__all__ = ["WebServer", "WebSettings", "parse_address"]
