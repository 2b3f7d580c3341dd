"""Every stage notebook is papermill-ready: a parameters cell whose every assignment papermill can
parse (a ';' or '=' in a comment silently hides a parameter from it), stored outputs, no errors."""
import ast

import nbformat
import pytest

from genemask import grid, paths

NOTEBOOKS = sorted(paths.NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_parses_completely(notebook):
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    assigned = {t.id for node in ast.parse(cells[0].source).body if isinstance(node, (ast.Assign, ast.AnnAssign))
                for t in (node.targets if isinstance(node, ast.Assign) else [node.target])}
    assert assigned == set(grid.notebook_parameters(notebook)), "papermill does not see every parameter"
    assert "out_dir" in assigned


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_with_outputs_and_no_errors(notebook):
    nb = nbformat.read(notebook, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert any(c.outputs for c in code), "commit the notebook with its default-parameter outputs (nbval compares them)"
    assert not any(o.output_type == "error" for c in code for o in c.outputs)
