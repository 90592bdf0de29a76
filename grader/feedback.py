"""Feedback HTML: the student's answers and the results of the tests, never hidden test source.

Test cells are shown with each hidden block replaced by a one-line placeholder, and with their
outputs replaced by a verdict ("passed", or the failure's first line when a visible test failed,
or "a hidden test failed"): tracebacks are not shown, because their context lines could quote the
hidden source. The student's own cells keep their outputs.
"""

from __future__ import annotations

import copy
import html

from nbformat.v4 import new_markdown_cell, new_output

from . import cells as C

HIDDEN_PLACEHOLDER = "# (hidden tests ran here)\n"
MAX_TEXT = 20_000          # characters of one output kept in the feedback
MAX_IMAGE = 2_000_000      # characters of one base64 PNG kept
SAFE_MIME = ("image/png", "text/plain")


def verdict(score) -> str:
    if score.kind == "manual":
        return f"graded by hand ({score.max_points:g} points)"
    pts = f"{score.points or 0:g}/{score.max_points:g} points"
    if score.passed:
        return f"passed: {pts}"
    if score.hidden_failed:
        return f"visible tests passed, a hidden test failed: {pts}"
    return f"failed: {pts}\n{score.message}"


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


def render_html(nb) -> str:
    """The feedback page. Markdown is sanitised too (a student's cell can hold raw HTML)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", sanitize_html=True)
    body, _ = exporter.from_notebook_node(nb)
    return body
