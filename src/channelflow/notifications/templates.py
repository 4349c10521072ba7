"""Rendering emails from Jinja2 templates shipped in the package, which a council may override.

Each kind has three files in ``templates/``: ``<kind>.subject.j2``, ``<kind>.txt.j2`` and
``<kind>.html.j2``. A file of the same name in the override folder is used instead. Undefined
names are errors (``StrictUndefined``) and HTML is autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path

import jinja2

from channelflow import clock
from channelflow.exceptions import TemplateError
from channelflow.notifications.kinds import Context, Kind, body_name, kind_of, sample, variables

PARTS = ("subject", "txt", "html")

_REVIEW_NAMES = {
    "support_plan": "support plan review",
    "post_exit_6": "6-month post-exit review",
    "post_exit_12": "12-month post-exit review",
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def template_name(kind: Kind, part: str) -> str:
    return f"{kind.value}.{part}.j2"


@lru_cache(maxsize=4096)
def _long_date(value: date | datetime) -> str:
    if isinstance(value, datetime):
        value = clock.local_date(value)
    return f"{value:%A} {value.day} {value:%B %Y}"


@lru_cache(maxsize=1024)
def _local_time(value: datetime) -> str:
    local = value.astimezone(clock.LOCAL_ZONE)
    return f"{_long_date(local.date())} at {local:%H:%M}"


def _words(value: str) -> str:
    return value.replace("_", " ")


def _review_name(value: str) -> str:
    return _REVIEW_NAMES.get(value, _words(value))


class Templates:
    """The template set: the package's own, with a council's overrides searched first."""

    def __init__(self, *, override_dir: Path | None = None) -> None:
        if override_dir is not None and not override_dir.is_dir():
            raise TemplateError(f"the templates folder {override_dir} does not exist")
        self.override_dir = override_dir
        loaders: list[jinja2.BaseLoader] = []
        if override_dir is not None:
            loaders.append(jinja2.FileSystemLoader(override_dir))
        loaders.append(jinja2.PackageLoader("channelflow.notifications", "templates"))
        self._environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html.j2",), default_for_string=False
            ),
            keep_trailing_newline=True,
            # Templates are read once per process (and checked at start): not stat()ed on
            # every render. A long-running process picks up edited overrides on restart.
            auto_reload=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._environment.filters.update(
            long_date=_long_date,
            local_time=_local_time,
            label=_words,
            review_name=_review_name,
            body_name=body_name,
        )

    def source_of(self, kind: Kind, part: str) -> str:
        """``override`` when the council's folder has this template, else ``built-in``."""
        name = template_name(kind, part)
        if self.override_dir is not None and (self.override_dir / name).is_file():
            return "override"
        return "built-in"

    def render(self, context: Context) -> Rendered:
        kind = kind_of(context)
        names = variables(context)
        subject = " ".join(self._render(kind, "subject", names).split())
        if not subject:
            raise TemplateError(f"template {template_name(kind, 'subject')} renders empty")
        return Rendered(
            subject=subject,
            text=self._render(kind, "txt", names),
            html=self._render(kind, "html", names),
        )

    def _render(self, kind: Kind, part: str, names: dict[str, object]) -> str:
        name = template_name(kind, part)
        try:
            return self._environment.get_template(name).render(names)
        except jinja2.TemplateNotFound as error:
            # The missing file may be one this template extends or includes.
            raise TemplateError(f"template {error.name or name} is missing") from None
        except jinja2.TemplateSyntaxError as error:
            raise TemplateError(
                f"template {error.name or name} line {error.lineno} is broken: {error.message}"
            ) from None
        except jinja2.UndefinedError as error:
            raise TemplateError(f"template {name} uses an unknown name ({error.message})") from None
        except jinja2.TemplateError as error:
            raise TemplateError(f"template {name} failed: {error.message}") from None
        except Exception as error:
            # An override can fail in plain Python too ({{ 1/0 }}, a filter given a wrong type).
            raise TemplateError(f"template {name} failed ({type(error).__name__})") from None

    def check(self) -> None:
        """Render every kind with its sample, so a broken template fails now, not at 3 a.m."""
        for kind in Kind:
            self.render(sample(kind))
