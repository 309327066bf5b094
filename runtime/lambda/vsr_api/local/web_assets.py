"""The local server's web page: static files in ``web/`` and the choices it offers.

The page (``web/index.html``, ``app.js``, ``style.css``) is plain HTML/JS/CSS that speaks only
the public API; nothing is fetched from elsewhere. ``GET /`` is the page, ``GET /web/<file>``
its assets, and ``GET /web/config.json`` the choices the server accepts, built from the
contract and the server's model list so the page never hard-codes them. The HTTP adapter
serves what ``web_response`` answers and knows nothing else of the page.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path

from vsr_client.api_models import ENVS, TASKS
from vsr_client.contract import DEFAULT_SEGMENT_TIME, SCALES

WEB_DIR = Path(__file__).with_name("web")
PAGE_PATHS = ("/", "/index.html")
ASSET_PREFIX = "/web/"
CONFIG_PATH = "/web/config.json"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


def page_config(models: Collection[str], default_model: str, api_key_required: bool) -> dict[str, object]:
    """What the page offers: the request's choices and whether to ask for an API key."""
    return {
        "scales": list(SCALES),
        "tasks": list(TASKS),
        "envs": list(ENVS),
        "segment_time": DEFAULT_SEGMENT_TIME,
        "models": sorted(models),
        "default_model": default_model,
        "api_key_required": api_key_required,
    }


def web_asset(path: str) -> tuple[bytes, str] | None:
    """A static file of the page for a GET path, with its Content-Type; None when it is not one."""
    if path in PAGE_PATHS:
        name = "index.html"
    elif path.startswith(ASSET_PREFIX):
        name = path[len(ASSET_PREFIX) :]
    else:
        return None
    # Only plain file names of this folder: no sub-paths, no dot files, nothing outside it.
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    file = WEB_DIR / name
    content_type = CONTENT_TYPES.get(file.suffix)
    if content_type is None or not file.is_file():
        return None
    return file.read_bytes(), content_type


def web_response(
    path: str, models: Collection[str], default_model: str, api_key_required: bool
) -> tuple[bytes, str] | None:
    """Body and Content-Type for a GET of the page, an asset or its config; None for other paths."""
    if path == CONFIG_PATH:
        body = json.dumps(page_config(models, default_model, api_key_required)).encode()
        return body, CONTENT_TYPES[".json"]
    return web_asset(path)
