"""Email templates written by tenants, in Jinja2: validated when saved, rendered per send.

Tenants are untrusted, so templates run in ``sandbox.GuardedEnvironment``: no access to
Python internals, no other templates (no loader; ``include``, ``extends`` and ``import`` are
refused outright), undefined variables are errors, and each render has a budget of steps,
time and value sizes (see that module). The HTML body is autoescaped; the text body and the
subject are not, since they are not HTML.

The subject becomes a header, so it must stay on one line: a subject template or override
that contains, or renders to, a line break is refused rather than cleaned up.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from jinja2 import TemplateSyntaxError, UndefinedError
from jinja2.environment import Template
from jinja2.exceptions import SecurityError

from pocdojo.core.errors import ValidationFailed
from pocdojo.jobs.mail.sandbox import Budget, GuardedEnvironment, LimitExceeded

Part = Literal["subject", "html", "text"]

_HTML_ENV = GuardedEnvironment(autoescape=True)
_PLAIN_ENV = GuardedEnvironment(autoescape=False)


class TemplateError(ValidationFailed):
    """A template that cannot be saved, or cannot be rendered with the data given.

    ``details`` holds the ``part`` (``subject``, ``html`` or ``text``), the template ``line``
    when known, and the ``error``.
    """

    code = "invalid_template"


@dataclass(frozen=True, slots=True)
class EmailTemplate:
    """A tenant's email template: Jinja2 sources for the subject and both bodies."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """A template rendered with one request's data, ready to become a message."""

    subject: str
    html: str
    text: str


@dataclass(frozen=True, slots=True)
class TemplateLimits:
    """Bounds on a template's sources and on what one render may cost.

    Attributes:
        max_source_chars: Longest HTML or text source.
        max_subject_chars: Longest subject, as source and once rendered.
        max_output_chars: Longest rendered HTML or text body.
        max_value_chars: Largest string, list or number a template may build.
        max_written_chars: Characters written in all, counting macros and set blocks.
        max_steps: Calls, loop iterations, output pieces and list or dict elements
            measured, per part rendered.
        max_seconds: Wall-clock time per part rendered.
    """

    max_source_chars: int = 100_000
    max_subject_chars: int = 500
    max_output_chars: int = 500_000
    max_value_chars: int = 500_000
    max_written_chars: int = 5_000_000
    max_steps: int = 200_000
    max_seconds: float = 2.0

    def budget(self) -> Budget:
        """A fresh budget for rendering one part."""
        return Budget(
            max_steps=self.max_steps,
            max_value_chars=self.max_value_chars,
            max_written_chars=self.max_written_chars,
            max_seconds=self.max_seconds,
        )


DEFAULT_LIMITS = TemplateLimits()
MAX_TEMPLATE_CHARS = DEFAULT_LIMITS.max_source_chars
MAX_SUBJECT_CHARS = DEFAULT_LIMITS.max_subject_chars


def validate_template(
    subject: str, html: str, text: str, *, limits: TemplateLimits = DEFAULT_LIMITS
) -> None:
    """Check that a template can be saved: sizes, a one-line subject, and valid Jinja.

    Errors that depend on the data (an undefined variable, a budget overrun) can only show
    when rendering.

    Raises:
        TemplateError: A ``ValidationFailed`` with the part (``subject``, ``html`` or
            ``text``), the line and Jinja's message in ``details``.
    """
    _compile_all(EmailTemplate(subject=subject, html=html, text=text), limits)


def render_email(
    template: EmailTemplate,
    data: Mapping[str, Any],
    subject_override: str | None = None,
    *,
    limits: TemplateLimits = DEFAULT_LIMITS,
) -> RenderedEmail:
    """Render ``template`` with ``data``.

    Args:
        template: The tenant's template.
        data: The variables, as received (JSON values).
        subject_override: Used as the subject instead of the template's, as plain text (it is
            not a template).
        limits: Bounds on sizes and on the cost of rendering.

    Returns:
        The subject (one line, surrounding whitespace stripped), the HTML and the text body.

    Raises:
        TemplateError: A ``ValidationFailed``: the template is invalid, refers to a variable
            ``data`` lacks (the message names it), breaks the sandbox or a limit, or the
            subject is not one line.
    """
    subject_template, html_template, text_template = _compile_all(template, limits)
    if subject_override is None:
        subject = _render("subject", subject_template, data, limits, limits.max_subject_chars)
    else:
        subject = subject_override
    return RenderedEmail(
        subject=_single_line(subject.strip(), limits),
        html=_render("html", html_template, data, limits, limits.max_output_chars),
        text=_render("text", text_template, data, limits, limits.max_output_chars),
    )


def _compile_all(
    template: EmailTemplate, limits: TemplateLimits
) -> tuple[Template, Template, Template]:
    _check_source("subject", template.subject, limits.max_subject_chars)
    if _has_line_break(template.subject):
        raise _failed("subject", "the subject template must be a single line", line=None)
    _check_source("html", template.html, limits.max_source_chars)
    _check_source("text", template.text, limits.max_source_chars)
    return (
        _compile("subject", template.subject),
        _compile("html", template.html),
        _compile("text", template.text),
    )


def _check_source(part: Part, source: str, max_chars: int) -> None:
    if len(source) > max_chars:
        raise _failed(
            part,
            f"the {part} template is longer than {max_chars} characters",
            line=None,
            code="template_too_large",
        )


def _compile(part: Part, source: str) -> Template:
    environment = _HTML_ENV if part == "html" else _PLAIN_ENV
    try:
        return environment.compile_guarded(source)
    except TemplateSyntaxError as exc:
        raise _failed(part, exc.message or "invalid syntax", line=exc.lineno) from exc
    except RecursionError as exc:  # Jinja's parser and our guard recurse once per level
        raise _failed(part, "expressions or blocks nest too deeply") from exc
    except SyntaxError as exc:
        # Python's own limits on the code Jinja generates: "too many nested parentheses",
        # "too many statically nested blocks".
        raise _failed(part, f"too complex to compile: {exc.msg}") from exc
    except ValueError as exc:
        # A literal Python will not convert (an integer of 5000 digits); what follows the
        # ";" in Python's message is advice for the server's code, not for the template.
        raise _failed(part, str(exc).split(";")[0]) from exc


def _render(
    part: Part, template: Template, data: Mapping[str, Any], limits: TemplateLimits, max_chars: int
) -> str:
    environment = _HTML_ENV if part == "html" else _PLAIN_ENV
    try:
        return environment.render_guarded(template, data, limits.budget(), max_chars)
    except LimitExceeded as exc:
        raise _failed(part, str(exc), _template_line(exc), code="template_too_large") from exc
    except UndefinedError as exc:
        raise _failed(part, f"undefined: {exc.message}", _template_line(exc)) from exc
    except SecurityError as exc:
        raise _failed(part, f"not allowed: {exc.message}", _template_line(exc)) from exc
    except RecursionError as exc:
        raise _failed(part, "macros or data nest too deeply", line=None) from exc
    except Exception as exc:
        # The tenant's code failed on this data, whatever it raised: ``{{ 1 / n }}`` with
        # n = 0, ``dictsort`` given a string (AttributeError), ``truncate(-5)`` (an assert in
        # Jinja). Inside the sandbox a template reaches nothing else, so the failure is its own.
        raise _failed(part, f"{type(exc).__name__}: {exc}", _template_line(exc)) from exc


def _single_line(subject: str, limits: TemplateLimits) -> str:
    """``subject``, if it can go into a header as it is."""
    if _has_line_break(subject) or any(ord(c) < 32 or ord(c) == 127 for c in subject):
        # Refused, not cleaned: a line break in a header is how headers get injected.
        raise _failed("subject", "the subject must be one line without control characters")
    if len(subject) > limits.max_subject_chars:
        raise _failed(
            "subject",
            f"the subject is longer than {limits.max_subject_chars} characters",
            code="template_too_large",
        )
    return subject


def _has_line_break(text: str) -> bool:
    # splitlines knows every line boundary Unicode has, not only CR and LF.
    return bool(text) and text.splitlines() != [text]


def _template_line(exc: BaseException) -> int | None:
    """The template line being rendered when ``exc`` was raised.

    Jinja rewrites tracebacks so that frames of template code carry template line numbers.
    """
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _failed(
    part: Part, message: str, line: int | None = None, *, code: str | None = None
) -> TemplateError:
    where = f"{part} template" if line is None else f"{part} template, line {line}"
    return TemplateError(
        f"{where}: {message}", code=code, details={"part": part, "line": line, "error": message}
    )
