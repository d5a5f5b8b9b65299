"""A Jinja environment for templates written by tenants: sandboxed, loader-less and metered.

Jinja's sandbox keeps a template away from Python internals, but not from spending unbounded
time or memory: ``{% for %}`` nested in ``{% for %}``, ``'x' * 10**9``, or a string doubled
by ``{% set s = s ~ s %}`` forty times all pass it. ``GuardedEnvironment`` adds a per-render
``Budget`` on top:

- **steps**: every call (function, method, macro, filter), loop iteration and piece of output
  costs one, and so does every element looked at when a list or dict is measured; a
  wall-clock deadline is checked at each step;
- **value size**: no call, filter, operator or ``~`` may take or make a value larger than a
  cap (strings by length, lists and dicts by their total contents), and operations whose
  result can dwarf their inputs (``*``, ``**``, widths, ``replace``, ``join``, ``wordwrap``)
  are checked before they run, not after;
- **written**: everything written anywhere (top level, macros, ``{% set %}`` and filter
  blocks) counts.

The templates are compiled from a rewritten syntax tree: loop iterables, output expressions
and concatenations are passed through guard filters whose names no template can spell. The
budget of the render in progress lives in a context variable (``spending``), so one
environment serves any number of renders, in any thread.

Comparisons, ``in`` and sorting are not metered; the value cap and the deadline bound them.
"""

from __future__ import annotations

import functools
import inspect
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes, pass_context
from jinja2.environment import Template
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

# Not identifiers, so a template cannot name these filters; only the rewritten tree uses them.
_ITER = "guard:iter"
_EMIT = "guard:emit"
_SIZE = "guard:size"

# Tags that would reach other templates; there is no loader, but say so at validation time.
_FORBIDDEN_TAGS: dict[type[nodes.Node], str] = {
    nodes.Extends: "extends",
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
}
# Filters an email does not need whose output size is hard to bound from their inputs.
_DROPPED_FILTERS = frozenset({"tojson", "pprint"})
_CONTAINERS = (list, tuple, dict, set, frozenset)
_PRINTF_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
_FORMAT_SPEC = re.compile(r"\{[^{}]*:((?:[^{}]|\{[^{}]*\})*)\}")
_DIGITS = re.compile(r"\d+")


class LimitExceeded(SecurityError):
    """A template asked for more than its budget allows."""


class Budget:
    """What one render of a template may still spend.

    Args:
        max_steps: Calls, loop iterations, output pieces and measured elements, together.
        max_value_chars: Largest value (string length, or total contents of a list or dict).
        max_written_chars: Characters written in all, counting macros and set blocks.
        max_seconds: Wall-clock time from the budget's creation.
    """

    def __init__(
        self, *, max_steps: int, max_value_chars: int, max_written_chars: int, max_seconds: float
    ) -> None:
        self.max_steps = max_steps
        self.max_value_chars = max_value_chars
        self.max_written_chars = max_written_chars
        self.max_seconds = max_seconds
        self.steps = 0
        self.written = 0
        self._deadline = time.monotonic() + max_seconds
        # Keyed by id with the object held, so an id cannot be reused while cached; templates
        # cannot mutate containers (immutable sandbox), so a measured size stays true.
        self._sizes: dict[int, tuple[object, int]] = {}

    def step(self, count: int = 1) -> None:
        """Spend ``count`` steps; raises ``LimitExceeded`` past the step or time limit."""
        self.steps += count
        if self.steps > self.max_steps:
            raise LimitExceeded(
                f"the template takes more than {self.max_steps} steps"
                " (calls, loop iterations, output pieces)"
            )
        if time.monotonic() > self._deadline:
            raise LimitExceeded(f"the template takes longer than {self.max_seconds:g} s")

    def allow(self, chars: int) -> None:
        """Refuse an operation whose result would hold more than the value cap."""
        if chars > self.max_value_chars:
            raise LimitExceeded(
                f"the template builds a value larger than {self.max_value_chars} characters"
            )

    def write(self, chars: int) -> None:
        """Count characters written to any output."""
        self.written += chars
        if self.written > self.max_written_chars:
            raise LimitExceeded(
                f"the template writes more than {self.max_written_chars} characters"
            )

    def size(self, value: object) -> int:
        """About how many characters ``value`` would print as, capped just past the limit."""
        if isinstance(value, str | bytes | range):
            return len(value)
        if isinstance(value, bool | float):
            return 0
        if isinstance(value, int):
            return value.bit_length() // 3  # a little over its count of decimal digits
        if not isinstance(value, _CONTAINERS):
            return 0
        cached = self._sizes.get(id(value))
        if cached is not None:
            return cached[1]
        total = self._measure(value)
        self._sizes[id(value)] = (value, total)
        return total

    def _measure(self, container: Any) -> int:
        self.step(len(container))
        elements = (
            chain.from_iterable(container.items()) if isinstance(container, dict) else container
        )
        total = 0
        for element in elements:
            total += 1 + self.size(element)
            if total > self.max_value_chars:
                break  # already too big; the rest cannot make it acceptable
        return total

    def checked(self, value: Any) -> Any:
        """``value``, if it is within the value cap."""
        self.allow(self.size(value))
        return value

    def check_args(self, *values: Any) -> None:
        """Refuse to pass any oversized value to an operation."""
        for value in values:
            self.allow(self.size(value))


_current: ContextVar[Budget | None] = ContextVar("pocdojo_template_budget", default=None)


@contextmanager
def spending(budget: Budget) -> Iterator[Budget]:
    """Make ``budget`` the one templates of a ``GuardedEnvironment`` spend from."""
    token = _current.set(budget)
    try:
        yield budget
    finally:
        _current.reset(token)


def _budget() -> Budget:
    budget = _current.get()
    if budget is None:
        # Also what stops Jinja's optimizer from folding guarded filters at compile time.
        raise RuntimeError("guarded templates render only inside spending(budget)")
    return budget


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """An immutable sandbox with no loader, strict undefined variables and a budget.

    Args:
        autoescape: Escape HTML in output (for HTML bodies; not for text or headers).
    """

    intercepted_binops = frozenset({"+", "*", "**", "%"})

    def __init__(self, *, autoescape: bool) -> None:
        super().__init__(loader=None, autoescape=autoescape, undefined=StrictUndefined)
        self.globals.pop("lipsum", None)  # its size comes from an argument
        self.filters = {
            name: _guarded_filter(name, function)
            for name, function in self.filters.items()
            if name not in _DROPPED_FILTERS
        }
        self.filters.update({_ITER: _iter_guard, _EMIT: _emit_guard, _SIZE: _size_guard})

    def compile_guarded(self, source: str) -> Template:
        """Compile ``source`` with its guards.

        Raises:
            TemplateSyntaxError: The source does not parse, names an unknown filter, or uses
                a forbidden tag (``extends``, ``include``, ``import``) or a recursive loop.
        """
        tree = self.parse(source)
        _refuse_forbidden(tree)
        guarded = _Guard().visit(tree)
        guarded.set_environment(self)
        return self.from_string(guarded)

    def render_guarded(
        self, template: Template, data: Mapping[str, Any], budget: Budget, max_chars: int
    ) -> str:
        """Render ``template`` with ``data``, spending from ``budget``.

        Raises:
            LimitExceeded: The output passes ``max_chars`` or the budget runs out.
            jinja2.TemplateError: Any other template error (undefined variable, sandbox).
        """
        pieces: list[str] = []
        total = 0
        with spending(budget):
            stream = template.generate(dict(data))
            try:
                for piece in stream:
                    total += len(piece)
                    if total > max_chars:
                        raise LimitExceeded(f"the output is longer than {max_chars} characters")
                    pieces.append(piece)
            finally:
                stream.close()  # type: ignore[attr-defined]
        return "".join(pieces)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply an intercepted operator after checking what it would build."""
        budget = _budget()
        budget.step()
        budget.check_args(left, right)
        if operator == "*":
            _check_repeat(budget, left, right)
        elif operator == "**":
            _check_power(budget, left, right)
        elif operator == "%" and isinstance(left, str):
            _check_printf(budget, left, right if isinstance(right, tuple) else (right,))
        return budget.checked(super().call_binop(context, operator, left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Call ``obj`` from a template: one step, checked arguments and result."""
        budget = _budget()
        budget.step()
        budget.check_args(*args, *kwargs.values())
        args = _check_str_method(budget, obj, args, kwargs)
        return budget.checked(super().call(context, obj, *args, **kwargs))


def _refuse_forbidden(tree: nodes.Template) -> None:
    for node in tree.find_all(tuple(_FORBIDDEN_TAGS)):
        tag = _FORBIDDEN_TAGS[type(node)]
        raise TemplateSyntaxError(f"'{tag}' is not allowed in this template", node.lineno)
    for loop in tree.find_all(nodes.For):
        if loop.recursive:
            raise TemplateSyntaxError("recursive loops are not allowed", loop.lineno)


class _Guard(NodeTransformer):
    """Route loop iterables, output and concatenation through the guard filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap(node.iter, _ITER)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(child, _EMIT) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        # The parts first: ``~`` turns each into a string before the result can be checked.
        node.nodes = [_wrap(child, _SIZE) for child in node.nodes]
        return _wrap(node, _SIZE)

    def visit_AssignBlock(self, node: nodes.AssignBlock) -> nodes.Node:
        self.generic_visit(node)
        # A filter over ``None`` applies to the block's captured output.
        node.filter = _wrap(node.filter, _SIZE, node.lineno)
        return node


def _wrap(node: nodes.Node | None, guard: str, lineno: int | None = None) -> nodes.Filter:
    if node is not None:
        lineno = node.lineno
    return nodes.Filter(node, guard, [], [], None, None, lineno=lineno)


@pass_context
def _iter_guard(_: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


@pass_context
def _emit_guard(_: Context, value: Any) -> Any:
    budget = _budget()
    budget.step()
    size = budget.size(value)
    budget.allow(size)
    budget.write(size)
    return value


@pass_context
def _size_guard(_: Context, value: Any) -> Any:
    return _budget().checked(value)


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` metered: one step, checked arguments and result, plus its own pre-check."""
    precheck = _FILTER_CHECKS.get(name)
    signature = inspect.signature(function) if precheck else None

    # functools.wraps also copies Jinja's pass_context/pass_eval_context mark.
    @functools.wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        budget.step()
        budget.check_args(*args, *kwargs.values())
        if precheck is not None and signature is not None:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            precheck(budget, bound.arguments)
            args, kwargs = bound.args, bound.kwargs
        return budget.checked(function(*args, **kwargs))

    return guarded


def _check_repeat(budget: Budget, left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        budget.allow((left.bit_length() + right.bit_length()) // 3)
        return
    count, sequence = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(count, int):
        budget.allow(budget.size(sequence) * count)


def _check_power(budget: Budget, base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        budget.allow(base.bit_length() * exponent // 3)


def _check_printf(budget: Budget, template: str, args: Iterable[Any]) -> None:
    """Widths and precisions in a ``%`` format, including ``*`` ones taken from ``args``."""
    for match in _PRINTF_SPEC.finditer(template):
        for part in match.groups():
            if part == "*":
                _check_int_args(budget, args)
            elif part is not None:
                budget.allow(int(part))


def _check_format(budget: Budget, template: str, args: Iterable[Any]) -> None:
    """Widths and precisions in a ``str.format`` spec, including nested ``{}`` ones."""
    for spec in _FORMAT_SPEC.findall(template):
        for digits in _DIGITS.findall(spec):
            budget.allow(int(digits))
        if "{" in spec:
            _check_int_args(budget, args)


def _check_int_args(budget: Budget, args: Iterable[Any]) -> None:
    for value in args:
        if isinstance(value, int):
            budget.allow(value)


def _check_replace(budget: Budget, text: str, old: str, new: str) -> None:
    matches = text.count(old) if old else len(text) + 1
    budget.allow(len(text) + matches * len(new))


def _check_join(budget: Budget, separator: str, items: list[Any]) -> None:
    budget.allow(len(separator) * len(items) + sum(budget.size(item) for item in items))


def _check_str_method(
    budget: Budget, obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Pre-check a string method that can build much more than it is given.

    Returns the positional arguments to call with (an iterator given to ``join`` becomes a
    list, so it can be measured and still be joined).
    """
    text = getattr(obj, "__self__", None)
    if text is None:  # the sandbox wraps str.format on access; the wrapper keeps the method
        text = getattr(getattr(obj, "__wrapped__", None), "__self__", None)
    if not isinstance(text, str) or not args:
        return args
    name = getattr(obj, "__name__", "")
    if name in {"ljust", "rjust", "center", "zfill"} and isinstance(args[0], int):
        budget.allow(args[0])
    elif name == "expandtabs" and isinstance(args[0], int):
        budget.allow(len(text) + text.count("\t") * args[0])
    elif name == "replace" and isinstance(args[0], str) and len(args) > 1:
        _check_replace(budget, text, args[0], str(args[1]))
    elif name == "join":
        items = list(args[0])
        _check_join(budget, text, items)
        return (items, *args[1:])
    elif name in {"format", "format_map"}:
        values = list(args) + list(kwargs.values())
        if name == "format_map" and isinstance(args[0], Mapping):
            values = list(args[0].values())
        _check_format(budget, text, values)
    return args


def _filter_center(budget: Budget, arguments: dict[str, Any]) -> None:
    budget.allow(int(arguments["width"]))


def _filter_indent(budget: Budget, arguments: dict[str, Any]) -> None:
    width = arguments["width"]
    prefix = len(width) if isinstance(width, str) else int(width)
    text = str(arguments["s"])
    budget.allow(len(text) + prefix * (text.count("\n") + 1))


def _filter_format(budget: Budget, arguments: dict[str, Any]) -> None:
    values = [*arguments["args"], *arguments["kwargs"].values()]
    _check_printf(budget, str(arguments["value"]), values)


def _filter_batch(budget: Budget, arguments: dict[str, Any]) -> None:
    budget.allow(int(arguments["linecount"]))


def _filter_slice(budget: Budget, arguments: dict[str, Any]) -> None:
    budget.allow(int(arguments["slices"]))


def _filter_replace(budget: Budget, arguments: dict[str, Any]) -> None:
    _check_replace(budget, str(arguments["s"]), str(arguments["old"]), str(arguments["new"]))


def _filter_join(budget: Budget, arguments: dict[str, Any]) -> None:
    items = list(arguments["value"])
    arguments["value"] = items  # measured once, joined from the same list
    _check_join(budget, str(arguments["d"]), items)


def _filter_wordwrap(budget: Budget, arguments: dict[str, Any]) -> None:
    text = str(arguments["s"])
    breaks = len(text) // max(int(arguments["width"]), 1) + 1
    budget.allow(len(text) + breaks * len(str(arguments["wrapstring"] or "\n")))


_FILTER_CHECKS: dict[str, Callable[[Budget, dict[str, Any]], None]] = {
    "center": _filter_center,
    "indent": _filter_indent,
    "format": _filter_format,
    "batch": _filter_batch,
    "slice": _filter_slice,
    "replace": _filter_replace,
    "join": _filter_join,
    "wordwrap": _filter_wordwrap,
}
