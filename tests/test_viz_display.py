"""A plot function as the last line of a notebook cell shows its figure once, not twice."""

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

SETUP = """%matplotlib inline
import numpy as np
from types import SimpleNamespace
from nnlab.viz import plot_history, plot_layer_histograms
h = SimpleNamespace(loss=list(np.linspace(2, 0.5, 60)), train_acc=[0.5, 0.7, 0.8], val_acc=[0.4, 0.6, 0.7])"""


def images(cell):
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


@pytest.mark.slow
def test_a_plot_as_last_line_is_shown_once(tmp_path):
    nb = new_notebook(cells=[new_code_cell(SETUP),
                             new_code_cell("plot_history(h)"),
                             new_code_cell("fig = plot_history({'a': h, 'b': h}, title='two runs')"),
                             new_code_cell("plot_layer_histograms([np.zeros(10), np.ones(10)])"),
                             new_code_cell("fig"),   # a figure shown by an earlier cell, displayed again
                             new_code_cell("plot_history(h)\nprint('after')")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert [images(c) for c in nb.cells[1:]] == [1, 1, 1, 1, 1]
