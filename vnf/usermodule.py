"""Loading a user's VNF module (service ``scapy``) and reporting its errors.

Nothing here imports scapy: the topology validation (:mod:`topologies.spec`) uses
:func:`check_source` to reject a missing file, a syntax error or a module without
``process`` at load time, without running the module. :func:`load_module` imports it
for real (in the VNF process) and checks its functions' signatures; :class:`ErrorLog`
keeps one log line (with the traceback) per distinct error and counts the rest.

The module contract is documented in :mod:`vnf.scapy_service`.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import logging
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

log = logging.getLogger(__name__)

#: the module's functions: name -> number of positional arguments it is called with
HOOKS = {"process": 2, "setup": 1, "tick": 1, "stats": 0}
MAX_ERROR_KINDS = 100  # distinct errors remembered (and logged) per hook family


class ModuleError(Exception):
    """A user module cannot be used: not found, does not import, has no ``process``, a
    function has the wrong arguments, or ``setup(params)`` raised. The message says
    which, with the traceback of the user's code when there is one."""


@dataclass(frozen=True)
class UserModule:
    path: Path
    module: ModuleType
    process: Callable[[Any, Any], Any]
    setup: Callable[[Any], Any] | None = None
    tick: Callable[[float], Any] | None = None
    stats: Callable[[], Any] | None = None

    @property
    def hooks(self) -> list[str]:
        """The functions the module defines, e.g. ``["process", "tick"]``."""
        return [h for h in HOOKS if getattr(self, h) is not None]


def module_name(path: Path) -> str:
    """The name a module file is imported under (``sys.modules``), e.g.
    ``dsfc_vnf_dscp_marker``: unlikely to shadow anything."""
    return "dsfc_vnf_" + re.sub(r"\W", "_", path.stem)


def check_source(path: Path) -> str | None:
    """What is wrong with a module file without running it, or None.

    Checks that the file exists and is readable, parses (a syntax error names the
    file's line) and binds ``process`` at module level (a ``def``, an assignment or an
    import, also inside a top-level ``if``/``try``).
    """
    if not path.is_file():
        return f"no such file: {path}"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {exc}"
    try:
        tree = ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        return f"{path}:{exc.lineno}: syntax error: {exc.msg}"
    if "process" not in _top_level_names(tree.body):
        return (f"{path} defines no process(pkt, ctx) function at module level "
                "(the function the VNF calls for every packet)")
    return None


def _top_level_names(body: list[ast.stmt]) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for sub in ("body", "orelse", "finalbody"):
                names |= _top_level_names(getattr(node, sub, []))
            for handler in getattr(node, "handlers", []):
                names |= _top_level_names(handler.body)
    return names


def load_module(path: str | Path) -> UserModule:
    """Import the module file and pick its functions; :class:`ModuleError` if unusable.

    The module's own folder is appended to ``sys.path`` (so it can import a helper file
    next to it). Does not call ``setup``: :class:`vnf.scapy_service.ScapyService` does.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise ModuleError(f"no such file: {path}")
    name = module_name(path)
    loader = SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None  # a loader was given
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    sys.modules[name] = module  # dataclasses, pickle and typing look the module up
    try:
        loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise ModuleError(f"{path} does not import: {describe(exc)}\n"
                          f"{user_traceback(exc, path)}") from exc
    hooks: dict[str, Any] = {}
    for hook, nargs in HOOKS.items():
        fn = getattr(module, hook, None)
        if fn is None:
            if hook == "process":
                raise ModuleError(f"{path} defines no process(pkt, ctx) function (the "
                                  "function the VNF calls for every packet)")
            continue
        if not callable(fn):
            raise ModuleError(f"{path}: {hook} is a {type(fn).__name__}, expected a "
                              "function")
        _check_arguments(path, hook, fn, nargs)
        hooks[hook] = fn
    return UserModule(path, module, **hooks)


_SIGNATURES = {"process": "process(pkt, ctx)", "setup": "setup(params)",
               "tick": "tick(now)", "stats": "stats()"}


def _check_arguments(path: Path, hook: str, fn: Callable[..., Any], nargs: int) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C function without a signature
        return
    try:
        sig.bind(*([None] * nargs))
    except TypeError:
        raise ModuleError(f"{path}: {hook}{sig} cannot be called as {_SIGNATURES[hook]}"
                          ) from None


def describe(exc: BaseException) -> str:
    """``ValueError: bad value`` (the exception's type and message, on one line)."""
    text = str(exc).strip().splitlines()
    return type(exc).__name__ + (f": {text[0]}" if text else "")


def _user_frames(tb: TracebackType | None, path: Path) -> TracebackType | None:
    """The traceback from the first frame of the user's code on (ours and importlib's
    frames above it are noise to the user); all of it when no frame is the user's."""
    first = tb
    while first is not None and first.tb_frame.f_code.co_filename != str(path):
        first = first.tb_next
    return first if first is not None else tb


def user_traceback(exc: BaseException, path: Path) -> str:
    """The traceback text of ``exc`` from the user's code on, without a trailing
    newline (a syntax error shows the offending line)."""
    lines = traceback.format_exception(type(exc), exc,
                                       _user_frames(exc.__traceback__, path))
    return "".join(lines).rstrip("\n")


def error_site(exc: BaseException, path: Path) -> str:
    """Where in the user's code ``exc`` was raised (``file.py:12``): the innermost frame
    in the module's file, else the innermost frame of all (e.g. inside scapy)."""
    last = user = ""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        last = f"{Path(code.co_filename).name}:{tb.tb_lineno}"
        if code.co_filename == str(path):
            user = last
        tb = tb.tb_next
    return user or last


class ErrorLog:
    """Counts the errors of a user module; logs each distinct one once.

    Distinct = same hook, exception type and place in the user's code (the message may
    differ: it often holds per-packet values). At most :data:`MAX_ERROR_KINDS` kinds
    are kept; errors of further kinds are counted in ``other`` and logged once in all.
    """

    def __init__(self, path: Path, logger: logging.Logger = log):
        self.path = path
        self.log = logger
        self.kinds: dict[tuple[str, str, str], list[Any]] = {}  # -> [count, message]
        self.other = 0

    def record(self, hook: str, exc: BaseException | None, what: str,
               consequence: str, kind: str | None = None) -> None:
        """Count an error of ``hook``; ``exc`` None for a non-exception error (``what``
        then says what went wrong, and ``kind``, when given, which errors are the same:
        by default those with the same ``what``)."""
        site = error_site(exc, self.path) if exc is not None else ""
        key = (hook, type(exc).__name__ if exc is not None else kind or what, site)
        entry = self.kinds.get(key)
        if entry is not None:
            entry[0] += 1
            return
        if len(self.kinds) >= MAX_ERROR_KINDS:
            self.other += 1
            if self.other == 1:
                self.log.error("%s: more than %d distinct errors; further new ones are "
                               "only counted", self.path.name, MAX_ERROR_KINDS)
            return
        message = describe(exc) if exc is not None else what
        self.kinds[key] = [1, message]
        if exc is not None:
            self.log.error("%s: %s raised %s at %s; %s. Logged once; the same error "
                           "again is only counted (service_stats.errors).\n%s",
                           self.path.name, hook, message, site, consequence,
                           user_traceback(exc, self.path))
        else:
            self.log.error("%s: %s %s; %s. Logged once; the same error again is only "
                           "counted (service_stats.errors).", self.path.name, hook, what,
                           consequence)

    def total(self, hook: str | None = None) -> int:
        return sum(c for (h, _, _), (c, _) in self.kinds.items()
                   if hook is None or h == hook)

    def summary(self) -> list[dict[str, Any]]:
        """``[{"hook", "error", "where", "count"}]``, most frequent first."""
        rows = [{"hook": h, "error": msg, "where": site, "count": count}
                for (h, _, site), (count, msg) in self.kinds.items()]
        return sorted(rows, key=lambda r: -r["count"])
