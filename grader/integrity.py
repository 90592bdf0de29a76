"""What the student's own code does, read from its source: answers that are not the student's work.

The kernel cannot be trusted to report on itself (a profile hook can be switched off), so these
checks read the code of every cell the student controls (answer cells, and any code cell that is not
the instructor's, added or edited):
- `nnlab` used directly (an import, or the module's name), or dynamic code and introspection that
  can reach it or tamper with the kernel: exec/eval/compile/__import__, inspect, importlib, sys,
  builtins, gc, ctypes, threading, get_ipython, a function's __code__ or __globals__, ...;
- a rebinding of a name the instructor's cells define (a test helper such as assert_close);
- a function near-identical to one of nnlab's (its source, with comments and docstrings removed).
A finding in a cell makes every test that uses a name defined by that cell earn nothing
automatically; the instructor sees the reason and can grade it by hand. Findings never raise.
"""

from __future__ import annotations

import ast
import builtins
import difflib
import functools
import io
import re
import textwrap
import tokenize
from importlib.util import find_spec
from pathlib import Path

from . import cells as C

# What an answer may import: numerical work and the standard library's plain tools. Anything else
# (nnlab, inspect, importlib, threading, concurrent, timeit, cProfile, pickle, comm, IPython, ...)
# is a finding. An allowlist, because a denylist is always missing one.
ALLOWED_MODULES = {"numpy", "scipy", "math", "cmath", "matplotlib", "functools", "itertools", "collections",
                   "dataclasses", "typing", "warnings", "time", "random", "statistics", "operator", "copy", "numbers",
                   "string", "re", "enum", "abc", "heapq", "bisect", "fractions", "decimal", "contextlib", "types",
                   "sys", "__future__", "textwrap", "pprint"}
FORBIDDEN_CALLS = {"exec", "eval", "compile", "__import__", "get_ipython", "globals", "locals", "vars",
                   "breakpoint", "__builtins__", "__main__", "__loader__", "__spec__", "__builtin__"}
FORBIDDEN_ATTRS = {"__code__", "__globals__", "__builtins__", "__closure__", "__subclasses__", "__dict__",
                   "__getattribute__", "__setattr__", "f_globals", "f_locals", "f_back", "f_builtins",
                   "settrace", "setprofile", "gi_frame", "tb_frame", "__loader__", "__spec__", "exec", "eval",
                   "__import__", "get_ipython", "run_line_magic", "run_cell_magic", "run_cell"}
# `sys` may be imported for harmless uses only: `print(..., file=sys.stderr)` is not an attack.
SAFE_ATTRS = {"sys": {"stdout", "stderr", "float_info", "int_info", "maxsize", "version_info", "version", "platform",
                      "byteorder", "getsizeof", "getrecursionlimit"}}
MAX_REVIEWED_CHARS = 200_000   # more student code than this is not reviewed, nor graded automatically
SIMILARITY_LIMIT = 0.9     # a function this close to one of nnlab's (and long enough) is not graded automatically
MIN_TOKENS = 50
_BUILTIN_NAMES = {n for n in dir(builtins) if not n.startswith("_")}


def _normalise(src: str) -> str:
    return re.sub(r"\s+", " ", src).strip()


def instructor_sources(template) -> set[str]:
    return {_normalise(C.source(c)) for c in template.cells if c.get("cell_type") == "code"}


def instructor_names(template) -> set[str]:
    """Names bound at the top level of the instructor's locked cells (setup, helpers)."""
    names = set()
    for cell in template.cells:
        if cell.get("cell_type") == "code" and C.is_locked(cell) and not C.is_solution(cell) \
                and not C.is_autograded(cell):
            tree = _parse(C.source(cell))
            if tree:
                names |= _top_level_bound(tree)
    return names


def python_of(src: str) -> str:
    """The Python a cell runs: IPython's own transformation, so a magic (`%run`, `x = %who_ls`) becomes
    the get_ipython() call it is; without IPython, magic lines are dropped."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(src)
    except Exception:  # noqa: BLE001 - IPython missing or confused: the plain reading below
        return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())


def _parse(src: str):
    try:
        return ast.parse(python_of(src))
    except (SyntaxError, ValueError):
        return None


def _top_level_bound(tree, imports: bool = True) -> set[str]:
    out = set()
    for node in tree.body:
        for sub in ast.walk(node) if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.For, ast.With,
                                                         ast.If, ast.Try)) else [node]:
            if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Store):
                out.add(sub.id)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif imports and isinstance(node, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return out


def code_findings(tree, known_modules=("np", "numpy", "plt", "scipy", "math")) -> list[str]:
    """Reasons (one per construct) why this code is not graded automatically. Assigning to an
    attribute of a module (np.allclose = ...) counts: the modules it imports and `known_modules`."""
    found = []
    modules = {(a.asname or a.name).split(".")[0] for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))
               for a in node.names} | set(known_modules)
    safe_names = set()  # Name nodes that only reach a harmless attribute (sys.stderr)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                and node.attr in SAFE_ATTRS.get(node.value.id, ()):
            safe_names.add(id(node.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] not in ALLOWED_MODULES]
        elif isinstance(node, ast.ImportFrom):
            mod = (node.module or "").split(".")[0]
            if node.level or mod not in ALLOWED_MODULES or (mod in SAFE_ATTRS and not all(
                    a.name in SAFE_ATTRS[mod] for a in node.names)):
                found.append(f"imports from {node.module}")
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id in FORBIDDEN_CALLS:
                found.append(f"uses {node.id}")
            elif node.id in SAFE_ATTRS and node.id in modules and id(node) not in safe_names:
                found.append(f"uses the module {node.id}")
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_ATTRS:
                found.append(f"uses .{node.attr}")
            elif isinstance(node.ctx, (ast.Store, ast.Del)) and isinstance(node.value, ast.Name) \
                    and node.value.id in modules:
                found.append(f"patches {node.value.id}.{node.attr}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("getattr", "hasattr", "setattr", "delattr") and len(node.args) >= 2:
            name = node.args[1].value if isinstance(node.args[1], ast.Constant) else None
            target = node.args[0].id if isinstance(node.args[0], ast.Name) else None
            if not isinstance(name, str):
                found.append(f"uses {node.func.id}() with a computed name")
            elif name.startswith("__") or name in FORBIDDEN_ATTRS or name in FORBIDDEN_CALLS:
                found.append(f"uses {node.func.id}(..., {name!r})")
            elif node.func.id in ("setattr", "delattr") and target in modules:
                found.append(f"patches {target}.{name}")
    return list(dict.fromkeys(found))


def _tokens(src: str) -> list[str]:
    """Tokens of code without comments, docstrings and layout (numbers and strings kept)."""
    out = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
                continue
            out.append(tok.string)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []
    return out


def _function_tokens(tree, src: str) -> dict[str, list[str]]:
    """name -> tokens of each top-level (or method) function's body, docstring removed."""
    out, lines = {}, src.splitlines()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                body = body[1:]
            if not body:
                continue
            seg = textwrap.dedent("\n".join(lines[body[0].lineno - 1:body[-1].end_lineno]))
            out[node.name] = _tokens(seg)
    return out


@functools.lru_cache(maxsize=1)
def nnlab_functions() -> dict[str, list[str]]:
    """'nnlab.module.function' -> tokens, read from the package's files (never imported)."""
    spec = find_spec("nnlab")
    if not spec or not spec.submodule_search_locations:
        return {}
    out = {}
    for path in sorted(Path(list(spec.submodule_search_locations)[0]).glob("*.py")):
        src = path.read_text(encoding="utf-8")
        tree = _parse(src)
        if tree:
            for name, toks in _function_tokens(tree, src).items():
                if len(toks) >= MIN_TOKENS:
                    out[f"nnlab.{path.stem}.{name}"] = toks
    return out


def nnlab_lookalike(toks: list[str]) -> tuple[str, float] | None:
    if len(toks) < MIN_TOKENS:
        return None
    best = None
    for name, ref in nnlab_functions().items():
        if not 0.7 <= len(ref) / len(toks) <= 1.4:
            continue
        m = difflib.SequenceMatcher(None, toks, ref, autojunk=False)
        if m.real_quick_ratio() < SIMILARITY_LIMIT or m.quick_ratio() < SIMILARITY_LIMIT:
            continue
        r = m.ratio()
        if r >= SIMILARITY_LIMIT and (best is None or r > best[1]):
            best = (name, r)
    return best


def review(nb, template) -> tuple[dict[str, list[str]], list[str], dict[str, list[str]]]:
    """Read the repaired notebook's student cells.

    Returns (tainted, flags, answers):
      tainted: name -> reasons, for every top-level name bound by a cell with a finding;
      flags: one line per finding, for the instructor ("cell sigmoid_impl: imports nnlab.activations");
      answers: grade_id -> tokens of each answer cell (for the report of similar submissions).
    """
    theirs = instructor_sources(template)
    protected = instructor_names(template)
    tainted: dict[str, list[str]] = {}
    flags: list[str] = []
    answers: dict[str, list[str]] = {}
    budget = MAX_REVIEWED_CHARS
    for i, cell in enumerate(nb.cells):
        if cell.get("cell_type") != "code" or C.is_autograded(cell) or (C.is_locked(cell) and not C.is_solution(cell)):
            continue
        src = C.source(cell)
        label = C.grade_id(cell) or f"#{i + 1}"
        if not C.is_solution(cell) and _normalise(src) in theirs:
            continue  # an instructor's experiment cell, unchanged
        budget -= len(src)
        tree = _parse(src) if budget >= 0 else None
        code = python_of(src) if tree is not None else src
        if C.is_solution(cell) and C.grade_id(cell) and tree is not None:
            bodies = _function_tokens(tree, code)
            answers[C.grade_id(cell)] = [t for toks in bodies.values() for t in toks] if bodies else _tokens(code)
        if tree is None:  # it raises SyntaxError in the kernel too, or it is too much to read
            reasons = ["is too much code to review" if budget < 0 else "cannot be read as Python"]
            bound = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", src))
        else:
            reasons = code_findings(tree)
            bound = _top_level_bound(tree)
            for fname, toks in _function_tokens(tree, code).items():
                hit = nnlab_lookalike(toks)
                if hit:
                    reasons.append(f"{fname} is {hit[1]:.0%} identical to {hit[0]}")
            # harmless for grading (the judge never takes these names from the kernel), worth a note
            assigned = _top_level_bound(tree, imports=False)
            notes = [f"rebinds the instructor's {n}" for n in sorted(assigned & protected)]
            notes += [f"rebinds the built-in {n}" for n in sorted(assigned & _BUILTIN_NAMES)]
            if notes:
                flags.append(f"cell {label}: note: " + "; ".join(notes))
        if reasons:
            flags.append(f"cell {label}: " + "; ".join(reasons))
            # dynamic code can define any name its strings spell (exec("def square...")): those too
            strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)] \
                if tree is not None else []
            names = bound | {w for t in strings for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", t)}
        else:  # a clean cell that uses a tainted name is tainted by it
            from .judge import names_of

            used = sorted(names_of(tree)[0] & set(tainted))
            reasons = [r for n in used for r in tainted[n]]
            names = bound
        for n in names - protected - _BUILTIN_NAMES if reasons else ():
            tainted.setdefault(n, [])
            tainted[n].extend(r for r in reasons if r not in tainted[n])
    return tainted, flags, answers


def similar_pairs(answers_by_student: dict[str, dict[str, list[str]]], limit: float = 0.95,
                  min_tokens: int = 40) -> list[tuple[str, str, str, float]]:
    """(grade_id, student a, student b, similarity) for answer cells that are near-identical
    (Jaccard similarity of token 5-grams), most similar first."""
    by_cell: dict[str, list[tuple[str, set]]] = {}
    for student, answers in answers_by_student.items():
        for gid, toks in answers.items():
            if len(toks) >= min_tokens:
                grams = {tuple(toks[i:i + 5]) for i in range(len(toks) - 4)}
                by_cell.setdefault(gid, []).append((student, grams))
    out = []
    for gid, items in by_cell.items():
        for i in range(len(items)):
            for j in range(i + 1, len(items)):
                a, b = items[i][1], items[j][1]
                sim = len(a & b) / max(1, len(a | b))
                if sim >= limit:
                    out.append((gid, items[i][0], items[j][0], sim))
    return sorted(out, key=lambda t: -t[3])


def withhold(scores, nb, tainted: dict[str, list[str]]) -> list[str]:
    """Zero every passed test cell that uses a tainted name; returns one note per cell withheld."""
    from .judge import names_of, python_source

    by_id = {s.grade_id: s for s in scores}
    notes = []
    for cell in nb.cells:
        s = by_id.get(C.grade_id(cell)) if C.is_autograded(cell) else None
        if s is None or not tainted:
            continue
        tree = _parse(python_source(C.source(cell)))
        read, bound = names_of(tree) if tree else (set(), set())
        used = sorted((read - bound) & set(tainted))
        if used:
            why = "; ".join(dict.fromkeys(r for n in used for r in tainted[n]))
            s.points, s.passed, s.hidden_failed = 0.0, False, False
            s.message = s.detail = (f"not graded automatically: the code of {', '.join(used)} {why}. "
                                    "The instructor will look at it.")
            notes.append(f"{s.grade_id} withheld ({why})")
    return notes
