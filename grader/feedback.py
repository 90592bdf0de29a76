"""Feedback HTML: the student's answers and the results of the tests, never hidden test source.

Test cells are shown with each hidden block replaced by a one-line placeholder, and with their
outputs replaced by a verdict: "passed"; for a visible test that failed, the failure's first line and
its "This looks like a known mistake: ..." and "Hint: ..." lines (what `grader check` prints); for a
hidden test, "a hidden test failed" and, when it can be said without quoting the test, the kind of
failure (scoring.failure_kind: "wrong dtype", "wrong shape", "wrong values on a random input", "your
function called nnlab's own implementation", "your code raised an exception (TypeError)"). Tracebacks
are not shown, because their context lines could quote the hidden source. The student's own cells
keep their outputs (text and PNG only).

The page is readable offline: math is drawn beforehand by matplotlib's mathtext into PNG images
(cases and aligned environments become small tables of them; what mathtext cannot draw stays as
LaTeX text), and the template (grader/static/feedback) loads no script and nothing from the network.
"""

from __future__ import annotations

import base64
import copy
import functools
import html
import io
import re
import secrets
from pathlib import Path

from nbformat.v4 import new_markdown_cell, new_output

from . import cells as C

HIDDEN_PLACEHOLDER = "# (hidden tests ran here)\n"
MAX_TEXT = 20_000          # characters of one output kept in the feedback
MAX_IMAGE = 2_000_000      # characters of one base64 PNG kept
SAFE_MIME = ("image/png", "text/plain")


TEACHING_PREFIXES = ("This looks like a known mistake:", "Hint:")


def teaching_lines(detail: str) -> list[str]:
    """The "This looks like a known mistake: ..." and "Hint: ..." lines of a visible test's message
    (what `grader check` prints below its table)."""
    return [ln.strip() for ln in str(detail or "").splitlines()[1:40] if ln.strip().startswith(TEACHING_PREFIXES)]


def verdict(score) -> str:
    """What the feedback says of one graded cell. A hidden test's failure is described by its kind
    only (scoring.failure_kind: "wrong dtype", ...), never by its message."""
    if score.kind == "manual":
        return f"graded by hand ({score.max_points:g} points)"
    pts = f"{score.points or 0:g}/{score.max_points:g} points"
    if score.passed:
        return f"passed: {pts}"
    if score.hidden_failed:
        kind = getattr(score, "failure_kind", "")
        return f"visible tests passed, a hidden test failed: {pts}" + (f"\nkind of failure: {kind}" if kind else "")
    return "\n".join([f"failed: {pts}", score.message, *teaching_lines(score.detail)])


def feedback_notebook(nb, scores, header: str):
    """A copy of the executed notebook, safe to show to the student."""
    nb = copy.deepcopy(nb)
    by_id = {s.grade_id: s for s in scores}
    for cell in nb.cells:
        if C.is_autograded(cell):
            cell.source = C.strip_hidden(C.source(cell), HIDDEN_PLACEHOLDER).rstrip("\n")
            s = by_id.get(C.grade_id(cell))
            cell.outputs = [new_output("stream", name="stdout", text=verdict(s) + "\n")] if s else []
        elif C.has_hidden(cell):  # a hidden block outside a test cell: never show it
            cell.source = C.strip_hidden(C.source(cell), HIDDEN_PLACEHOLDER)
            if cell.cell_type == "code":
                cell.outputs = []
        elif cell.cell_type == "code":
            cell.outputs = [o for o in map(_safe_output, cell.get("outputs", [])) if o]
        cell.pop("attachments", None)
    rows = "\n".join(f"| {s.grade_id} | {verdict(s).splitlines()[0]} |" for s in scores)
    nb.cells.insert(0, new_markdown_cell(f"# Feedback\n\n{html.escape(header)}\n\n| exercise | result |\n|---|---|\n{rows}\n"))
    return nb


def _safe_output(out):
    """An output the student's code produced, reduced to what cannot run in a browser: text (escaped
    by the exporter) and PNG images, each capped in size. HTML, JavaScript, SVG and widgets go."""
    kind = out.get("output_type")
    if kind == "stream":
        text = str(out.get("text", ""))
        return new_output("stream", name="stdout" if out.get("name") != "stderr" else "stderr",
                          text=text[:MAX_TEXT] + ("\n... (cut)\n" if len(text) > MAX_TEXT else ""))
    if kind == "error":
        return new_output("error", ename=str(out.get("ename", ""))[:200], evalue=str(out.get("evalue", ""))[:MAX_TEXT],
                          traceback=[str(t)[:MAX_TEXT] for t in out.get("traceback", [])[:20]])
    if kind in ("display_data", "execute_result"):
        data = out.get("data", {})
        kept = {}
        if isinstance(data.get("image/png"), str) and len(data["image/png"]) <= MAX_IMAGE:
            kept["image/png"] = data["image/png"]
        elif "text/plain" in data:
            kept["text/plain"] = str(data["text/plain"])[:MAX_TEXT]
        return new_output("display_data", data=kept) if kept else None
    return None


MARKDOWN_TAGS = ["p", "h1", "h2", "h3", "h4", "h5", "h6", "br", "hr", "blockquote", "pre", "code", "em", "strong",
                 "b", "i", "u", "s", "del", "ins", "mark", "small", "sup", "sub", "kbd", "ul", "ol", "li", "dl", "dt",
                 "dd", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "a", "abbr", "span", "div",
                 "details", "summary"]
MARKDOWN_ATTRS = {"*": ["class", "id", "title"], "a": ["href", "title"], "th": ["align"], "td": ["align"],
                  "ol": ["start"]}


def feedback_clean(text: str) -> str:
    """A markdown cell's HTML, sanitised: the tags markdown produces stay (nbconvert's own clean_html
    escapes <p>, <h1>, <th> ..., which then show as text); scripts, styles, images, frames, forms and
    event attributes go; links only to http(s), mailto and anchors."""
    import bleach

    return bleach.clean(str(text), tags=MARKDOWN_TAGS, attributes=MARKDOWN_ATTRS,
                        protocols=["http", "https", "mailto"], strip=True, strip_comments=True)


def render_html(nb) -> str:
    """The feedback page, readable offline: markdown sanitised (a student's cell can hold raw HTML),
    math drawn beforehand as images (no MathJax), and nothing loaded from the network
    (grader/static/feedback: nbconvert's lab template without its scripts, with a CSP that forbids them)."""
    from nbconvert import HTMLExporter

    nb, math, nonce = with_math_placeholders(nb)
    exporter = HTMLExporter(template_name="feedback", extra_template_basedirs=[str(STATIC)], sanitize_html=True,
                            filters={"feedback_clean": feedback_clean})
    body, _ = exporter.from_notebook_node(nb)
    return put_math_back(body, math, nonce)


# ---------------------------------------------------------------- math, drawn beforehand

STATIC = Path(__file__).resolve().parent / "static"
MATH_PT = 12.0        # the size math is drawn at; the image is then sized in em, so it follows the text
MATH_SCALE = 1.15     # Computer Modern looks small next to the page's sans-serif text
MATH_DPI = 192        # twice a screen's resolution: sharp when zoomed or on a dense screen
_TOKEN = "M{nonce}X{i}Z"
_CODE_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,}).*?(?:^[ \t]{0,3}\1[^\n]*$|\Z)", re.MULTILINE | re.DOTALL)
_CODE_SPAN = re.compile(r"(`+)(?!`).{1,2000}?(?<!`)\1(?!`)", re.DOTALL)
_MATH = re.compile(r"(?<!\\)\$\$(?P<d1>.{1,2000}?)\$\$|\\\[(?P<d2>.{1,2000}?)\\\]|\\\((?P<i2>.{1,1000}?)\\\)"
                   r"|(?<![\\$])\$(?!\$)(?P<i1>(?:[^$\n\\]|\\.|\n(?![ \t]*\n)){1,1000}?)\$", re.DOTALL)
# Bounds, so that a student's markdown cannot make the feedback slow: longer cells, longer formulas and
# formulas beyond the count are shown as their LaTeX text.
MAX_MATH_CELL = 20_000     # characters of one markdown cell looked at for math
MAX_MATH_TOTAL = 200_000   # ... and of all of them (the course's notebooks have under 50,000)
MAX_FORMULA = 1_500
MAX_FORMULAS = 600


def find_math(md: str) -> list[tuple[int, int, str, bool]]:
    """(start, end, tex, display) for each formula of a markdown text: $...$, $$...$$, \\(...\\),
    \\[...\\], outside code spans and fenced code blocks."""
    masked = list(md)
    for rx in (_CODE_FENCE, _CODE_SPAN):
        for m in rx.finditer("".join(masked)):
            masked[m.start():m.end()] = "\0" * (m.end() - m.start())
    out = []
    for m in _MATH.finditer("".join(masked)):
        display = m.group("d1") is not None or m.group("d2") is not None
        tex = next(g for g in (m.group("d1"), m.group("d2"), m.group("i1"), m.group("i2")) if g is not None)
        if tex.strip() and "\0" not in tex:
            out.append((m.start(), m.end(), md[m.start(m.lastgroup):m.end(m.lastgroup)], display))
    return out


def _group_end(s: str, i: int) -> int:
    """Index just past the balanced {...} group starting at s[i] == "{" (len(s) if unbalanced)."""
    depth = 0
    for j in range(i, len(s)):
        if s[j] == "\\":
            continue
        if s[j] == "{" and (j == 0 or s[j - 1] != "\\"):
            depth += 1
        elif s[j] == "}" and (j == 0 or s[j - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return j + 1
    return len(s)


def _arg(s: str, i: int) -> tuple[str, int]:
    """The argument of a macro starting at s[i] (after spaces): a {group}, a \\command or one character,
    returned braced."""
    while i < len(s) and s[i] == " ":
        i += 1
    if i >= len(s):
        return "{}", i
    if s[i] == "{":
        j = _group_end(s, i)
        return s[i:j], j
    m = re.match(r"\\[A-Za-z]+|\\.|.", s[i:], re.DOTALL)
    return "{" + m.group(0) + "}", i + len(m.group(0))


_ONE_ARG = ("sqrt", "mathcal", "mathbb", "mathbf", "mathrm", "mathit", "mathsf", "mathtt", "mathfrak", "hat",
            "bar", "tilde", "vec", "dot", "ddot", "widehat", "widetilde", "overline", "text", "operatorname",
            "boldsymbol")
_TWO_ARGS = ("frac", "dfrac", "binom", "underset", "overset")
_WRAPPERS = ("mathrel", "mathbin", "mathord", "mathop", "displaystyle", "textstyle")


def _mathtext(tex: str) -> str:
    """LaTeX as matplotlib's mathtext reads it: \\frac12 -> \\frac{1}{2}, \\sqrt2 -> \\sqrt{2},
    \\mathbb E -> \\mathbb{E}, \\le -> \\leq, \\tfrac -> \\frac, \\bigl( -> (, \\lvert -> |, ..."""
    s = " ".join(tex.split())
    s = re.sub(r"\\(?:tag|label)\s*\{[^{}]*\}|\\nonumber\b|\\notag\b", "", s)
    s = re.sub(r"\\[bB]igg?[lrm]?(?![A-Za-z])", "", s)
    s = re.sub(r"\\left\.|\\right\.", "", s)
    for a, b in ((r"\\le(?![A-Za-z])", r"\\leq"), (r"\\ge(?![A-Za-z])", r"\\geq"), (r"\\ne(?![A-Za-z])", r"\\neq"),
                 (r"\\tfrac(?![A-Za-z])", r"\\frac"), (r"\\texttt(?![A-Za-z])", r"\\mathtt"),
                 (r"\\textrm(?![A-Za-z])", r"\\mathrm"), (r"\\textbf(?![A-Za-z])", r"\\mathbf"),
                 (r"\\textit(?![A-Za-z])", r"\\mathit"), (r"\\[lr]Vert(?![A-Za-z])", r"\\Vert"),
                 (r"\\[lr]vert(?![A-Za-z])", "|"), (r"\\lbrace(?![A-Za-z])", r"\\{"), (r"\\rbrace(?![A-Za-z])", r"\\}")):
        s = re.sub(a, b, s)
    out, i = [], 0
    while i < len(s):
        m = re.match(r"\\([A-Za-z]+)", s[i:])
        if not m:
            out.append(s[i])
            i += 1
            continue
        name, i = m.group(1), i + len(m.group(0))
        if name in _WRAPPERS:
            if name in ("displaystyle", "textstyle"):
                continue
            arg, i = _arg(s, i)
            out.append(_mathtext(arg[1:-1]))
            continue
        if name in ("underbrace", "overbrace"):
            body, i = _arg(s, i)
            j = i
            while j < len(s) and s[j] == " ":
                j += 1
            if j < len(s) and s[j] in "_^":
                label, i = _arg(s, j + 1)
                out.append(("\\underset" if name == "underbrace" else "\\overset") + _mathtext(label) + _mathtext(body))
            else:
                out.append(_mathtext(body))
            continue
        out.append("\\" + name)
        n = 1 if name in _ONE_ARG else 2 if name in _TWO_ARGS else 0
        if name == "sqrt":
            j = i
            while j < len(s) and s[j] == " ":
                j += 1
            if j < len(s) and s[j] == "[":
                k = s.find("]", j)
                if k > 0:
                    out.append(s[j:k + 1])
                    i = k + 1
        for _ in range(n):
            arg, i = _arg(s, i)
            out.append("{" + (arg[1:-1] if name in ("text", "operatorname") else _mathtext(arg[1:-1])) + "}")
    return "".join(out)


@functools.lru_cache(maxsize=8192)
def _draw(tex: str):
    """(PNG data URI, height, depth, width) in em of one formula drawn by matplotlib's mathtext (at
    MATH_DPI, black on transparent), or None when mathtext cannot read it."""
    import matplotlib
    import numpy as np
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties
    from PIL import Image

    try:
        with matplotlib.rc_context({"mathtext.fontset": "cm"}):
            r = mathtext.MathTextParser("agg").parse(f"${tex}$", dpi=MATH_DPI, prop=FontProperties(size=MATH_PT))
        ink = np.asarray(r.image)
        if ink.size == 0:
            return None
        buf = io.BytesIO()
        Image.fromarray(np.stack([np.zeros_like(ink), ink], -1), "LA").save(buf, format="PNG")
    except Exception:  # noqa: BLE001 - any formula mathtext cannot draw stays as text
        return None
    em = MATH_DPI / 72 * MATH_PT / MATH_SCALE  # pixels per em of the surrounding text
    uri = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return uri, ink.shape[0] / em, r.depth / em, ink.shape[1] / em


def _img(tex: str, display: bool = False) -> str | None:
    tex_m = _mathtext(tex)
    if display:
        tex_m = re.sub(r"\\frac(?![A-Za-z])", r"\\dfrac", tex_m)
    drawn = _draw(tex_m) or _draw("{}" + tex_m + "{}")  # a lone operator ($-$) needs operands
    if drawn is None:
        return None
    uri, h, d, w = drawn
    return (f'<img class="math" alt="{html.escape(tex, quote=True)}" src="{uri}" '
            f'style="height:{h:.3f}em;width:{w:.3f}em;vertical-align:{-d:.3f}em">')


_ENV = re.compile(r"\\begin\{(cases|aligned|align\*?|gathered|split|eqnarray\*?)\}(.*?)\\end\{\1\}", re.DOTALL)


def _rows(body: str) -> list[list[str]]:
    rows = re.split(r"\\\\(?:\s*\[[^\]]*\])?", body)
    return [[c.strip() for c in r.split("&")] for r in rows if r.strip()]


def _env_table(env: str, body: str) -> str | None:
    rows = _rows(body)
    cells = []
    for r in rows:
        row = []
        for k, c in enumerate(r):
            img = _img(c, True) if c else ""
            if img is None:
                return None
            align = "math-left" if env in ("cases", "gathered") or k % 2 == 1 else "math-right"
            row.append(f'<td class="{align}">{img}</td>')
        cells.append("<tr>" + "".join(row) + "</tr>")
    brace = (f'<span class="math-brace" style="font-size:{1.4 * len(rows):.1f}em">{{</span>' if env == "cases" else "")
    return f'{brace}<table class="math-rows">{"".join(cells)}</table>'


def _as_text(tex: str, display: bool) -> str:
    return f'<code class="math-tex">{html.escape(("$$" if display else "$") + tex + ("$$" if display else "$"))}</code>'


def math_html(tex: str, display: bool) -> str:
    """One formula as HTML: images drawn by mathtext (each cases or aligned environment becomes a table
    of them), or the LaTeX source as code when mathtext cannot draw it. Never loads anything."""
    if len(tex) > MAX_FORMULA:
        return _as_text(tex, display)
    try:
        return _math_html(tex, display)
    except (RecursionError, ValueError, IndexError, TypeError):  # a pathological formula stays as text
        return _as_text(tex, display)


def _math_html(tex: str, display: bool) -> str:
    parts, last = [], 0
    for m in _ENV.finditer(tex):
        if "\\begin" in m.group(2):
            parts = None
            break
        before = tex[last:m.start()].strip()
        parts.append(_img(before, display) if before else "")
        parts.append(_env_table(m.group(1), m.group(2)))
        last = m.end()
    if parts is not None:
        rest = tex[last:].strip()
        if rest or not parts:
            parts.append(_img(rest, display) if rest else None)
    if parts is None or any(p is None for p in parts) or "\\begin" in tex[last:]:
        return _as_text(tex, display)
    joined = "".join(parts)
    return f'<span class="math-display">{joined}</span>' if display else joined


def with_math_placeholders(nb):
    """A copy of nb whose markdown formulas are replaced by tokens, and token -> HTML of the formula.
    The tokens hold a random part, so a student's text cannot forge one."""
    nb = copy.deepcopy(nb)
    nonce = secrets.token_hex(6)
    table, budget = {}, MAX_MATH_TOTAL
    for cell in nb.cells:
        if cell.get("cell_type") != "markdown":
            continue
        src = C.source(cell)
        budget -= len(src)
        found = find_math(src) if len(src) <= MAX_MATH_CELL and budget >= 0 else []
        if not found:
            continue
        pieces, last = [], 0
        for start, end, tex, display in found:
            token = _TOKEN.format(nonce=nonce, i=len(table))
            table[token] = math_html(tex, display) if len(table) < MAX_FORMULAS else _as_text(tex, display)
            pieces += [src[last:start], token]
            last = end
        pieces.append(src[last:])
        cell.source = "".join(pieces)
    return nb, table, nonce


def put_math_back(body: str, table: dict, nonce: str) -> str:
    """Tokens in text become the formulas; a token inside a tag (a heading's id) is dropped."""
    rx = re.compile(r"(<[^>]*>)|M" + nonce + r"X\d+Z")

    def sub(m):
        if m.group(1) is not None:
            return re.sub(r"M" + nonce + r"X\d+Z", "", m.group(1))
        return table.get(m.group(0), "")
    return rx.sub(sub, body)
