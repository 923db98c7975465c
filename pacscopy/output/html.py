"""HTML pages from the templates in ``pacscopy/output/templates`` (package data).

Every page extends ``page.html.j2``: one stylesheet (``style.css``), one chart
script (``charts.js``) that draws the page's charts as SVG from the data
embedded in it, no external resources, and a Content-Security-Policy that
allows exactly that stylesheet and script (by their hashes).

Every ``{{ value }}`` is escaped with :func:`html.escape` and formatted the
way pacscopy prints values: integers with thousands separators, timestamps
in ISO 8601, ``None`` as nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
from functools import cache
from importlib.resources import files
from typing import Any

import jinja2
from markupsafe import Markup

from pacscopy import __version__
from pacscopy.output import render


def text(v: Any) -> str:
    """A value as the pages and the text report show it."""
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    if isinstance(v, dt.datetime):
        return v.isoformat(sep=" ", timespec="seconds")
    return "" if v is None else str(v)


def _finalize(v: Any) -> Any:
    return v if isinstance(v, Markup) else Markup(html.escape(text(v), quote=True))


def script_json(data: Any) -> Markup:
    """JSON that cannot end its <script> element (nor open a comment) whatever the values hold."""
    out = render.document_json(data, compact=True)
    return Markup(out.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
                  .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _rows(items: list[dict[str, Any]], *keys: str) -> list[list[Any]]:
    """The ``keys`` of each dict, as table rows."""
    return [[item.get(k) for k in keys] for item in items]


def _sha256(s: str) -> str:
    return base64.b64encode(hashlib.sha256(s.encode("utf-8")).digest()).decode("ascii")


def _resource(name: str) -> str:
    return files("pacscopy.output").joinpath("templates", name).read_text(encoding="utf-8")


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pacscopy.output", "templates"),
        autoescape=True,
        finalize=_finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["human_bytes"] = render.human_bytes
    env.filters["rows"] = _rows
    env.globals["zip"] = zip
    return env


def page(template: str, title: str, data: Any, **context: Any) -> str:
    """Render ``template`` (a page extending page.html.j2); ``data`` is embedded for the charts."""
    style, script = _resource("style.css"), _resource("charts.js")
    csp = (f"default-src 'none'; style-src 'sha256-{_sha256(style)}'; script-src 'sha256-{_sha256(script)}'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    return _environment().get_template(template).render(
        title=title, version=__version__, csp=csp, style=Markup(style), script=Markup(script),
        data_json=script_json(data), **context,
    )
