"""Parameter grids → notebook cells run by Snakemake, with provenance and visible staleness.

``spec`` reads and checks a params file, ``plan`` turns it into every cell with keys and
dependencies, ``state`` says which cells are fresh, stale or to run, ``cell`` runs one cell,
``workflow`` is ``genemask grid`` (Snakemake underneath, ``Snakefile`` beside this file),
``collect`` copies results into ``results/<profile>/``, ``migrate`` records what is known of
results collected before provenance was and re-keys committed cells to the one key formula, ``code`` finds the library modules a notebook runs (what
makes a cell stale), ``verify`` reruns stale cells and compares their results with the committed ones.
"""
from .collect import RESULT_MAX_BYTES, RESULT_SUFFIXES, collect_results
from .migrate import migrate, migrate_keys
from .plan import Cell, Plan, cell_key, combinations, expand_env, notebook_code, plan_grid
from .spec import GridError, GridSpec, Stage, load_spec, notebook_parameters
from .state import FRESH, STALE, TO_RUN, VERIFIED, GridState, grid_state, status_lines
from .workflow import run_grid

_expand_env = expand_env  # the name tests and older callers use

__all__ = ["Cell", "FRESH", "GridError", "GridSpec", "GridState", "Plan", "RESULT_MAX_BYTES", "RESULT_SUFFIXES",
           "STALE", "Stage", "TO_RUN", "VERIFIED", "cell_key", "collect_results", "combinations", "expand_env", "grid_state",
           "load_spec", "migrate", "migrate_keys", "notebook_code", "notebook_parameters", "plan_grid", "run_grid", "status_lines"]
