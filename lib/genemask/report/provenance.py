"""How the results the book shows were made, and which are stale, from ``results/<profile>/``.

Each collected cell carries ``provenance.json`` (see :mod:`genemask.grid.provenance`). A cell is
``fresh`` when the code it runs (its notebook's library modules, :mod:`genemask.grid.code`) is the
code here now and its upstream cells are fresh or verified, ``verified`` when a rerun by the code
of now reproduced it (``genemask grid --verify``), ``stale`` otherwise, ``orphaned`` when the
profile's params file no longer asks for it.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import paths

COLUMNS = ["stage", "key", "state", "commit", "library", "migrated", "wall_min", "cpu_min", "why", "verified_by"]


def short_reason(reason: str) -> str:
    """A stale cell's reasons in a few words for the book's table, whose other columns already say
    which key and library made it: "other notebook code", "other library", and its upstream
    reasons counted (a cell downstream of many stale cells would otherwise list each of them)."""
    parts = [part for part in reason.split("; ") if part]
    short = []
    for part in parts:
        if part.startswith("made by other notebook code"):
            short.append("other notebook code")
        elif part.startswith("made by code"):
            short.append("other code")
        elif part.startswith("made by library"):
            short.append("uncommitted library code")
        elif part.startswith("made by commit"):
            short.append("commit not in this clone")
        elif not part.startswith("upstream "):
            short.append(part)
    upstream = sum(part.startswith("upstream ") for part in parts)
    if upstream:
        short.append(f"{upstream} upstream cell{'s' if upstream > 1 else ''} not fresh or remade since")
    return "; ".join(short)


def provenance_table(profile: str | None = None, params_file: str | Path | None = None) -> pd.DataFrame:
    """One row per collected cell: stage, key, state (fresh | verified | stale | orphaned), the commit that
    made it, its library hash, whether its record was migrated, wall and CPU minutes, why stale
    (``short_reason``; ``genemask grid --status`` lists every upstream cell)."""
    from .. import store
    from ..grid import GridError, grid_state, plan_grid
    from .results import book_profile

    profile = profile or book_profile()
    params_file = Path(params_file) if params_file else paths.PARAMS / f"{profile}.yaml"
    rows = []

    def row(stage: str, key: str, state: str, record: dict, why: str, reproduced: dict | None = None) -> dict:
        wall, cpu = record.get("wall_seconds"), record.get("cpu_seconds")
        commit = record.get("commit")
        return {"stage": stage, "key": key, "state": state,
                "commit": (str(commit)[:10] + (" (dirty)" if record.get("dirty") else "")) if commit else "unknown",
                "library": record.get("library_hash") or "unknown", "migrated": bool(record.get("migrated")),
                "wall_min": round(wall / 60, 1) if wall else None, "cpu_min": round(cpu / 60, 1) if cpu else None,
                "why": why, "verified_by": verification(reproduced) if reproduced else ""}

    try:
        gs = grid_state(plan_grid(params_file, check_env=False), use_runs=False) if params_file.exists() else None
    except (GridError, store.StoreError):
        gs = None
    if gs is not None and gs.plan.spec.profile == profile:
        for cell in gs.plan.cells:
            st = gs.of(cell)
            if st.where == "results" and st.record is not None:
                rows.append(row(cell.stage, st.record_key, st.state, st.record, short_reason(st.reason),
                                st.reproduced if st.state == "verified" else None))
        for stage, keys in gs.orphans.items():
            for key in keys:
                rows.append(row(stage, key, "orphaned", store.cell_record(profile, stage, key),
                                f"{paths.display(params_file)} does not ask for it"))
    else:  # no params file for this profile: judge by the library alone
        from ..source import library_hash

        now = library_hash()
        for stage in store.stages(profile):
            for entry in store.rows(profile, stage):
                record = store.cell_record(profile, stage, entry["key"])
                fresh = record.get("library_hash") == now
                rows.append(row(stage, entry["key"], "fresh" if fresh else "stale", record,
                                "" if fresh else f"made by library {record.get('library_hash') or 'unknown'}, now {now}"))
    return pd.DataFrame(rows, columns=COLUMNS)


def verification(entry: dict) -> str:
    """How a rerun verified a cell, in words: the comparison (equal for a deterministic cell; bit for
    bit on the same CPU; in distribution, within its method's seeds, on another) and its commit."""
    kind = str(entry.get("kind") or "compared")
    commit = str(entry.get("commit") or "unknown")[:10]
    return f"{kind}; rerun at commit {commit}" + (f" on {entry['cpu_model']}" if entry.get("cpu_model") else "")


def verifications(table: pd.DataFrame) -> pd.DataFrame:
    """The verified cells, each with how its rerun compared: a reader weighs a training cell matched
    bit for bit on the same CPU above one found within its method's seeds on another."""
    verified = table[table["state"] == "verified"]
    return verified.set_index(["stage", "key"])[["verified_by"]].rename(columns={"verified_by": "how the rerun compared"})


def provenance_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per stage: cells, how many fresh / verified / stale / orphaned, the commits that made them, wall
    hours ("not recorded" for a stage whose cells were migrated from records without times, not NaN)."""
    if table.empty:
        return pd.DataFrame(columns=["cells", "fresh", "verified", "stale", "orphaned", "made by commit(s)", "wall h"])
    out = table.groupby("stage", sort=False).agg(
        cells=("key", "size"),
        fresh=("state", lambda s: int((s == "fresh").sum())),
        verified=("state", lambda s: int((s == "verified").sum())),
        stale=("state", lambda s: int((s == "stale").sum())),
        orphaned=("state", lambda s: int((s == "orphaned").sum())),
        commits=("commit", lambda s: ", ".join(sorted(set(s)))),
        wall=("wall_min", lambda s: round(s.sum() / 60, 2) if s.notna().any() else None),
    )
    out["wall"] = out["wall"].astype(object).where(out["wall"].notna(), "not recorded")
    return out.rename(columns={"commits": "made by commit(s)", "wall": "wall h"})


def stale_reasons(table: pd.DataFrame) -> pd.DataFrame:
    """Per stage, each reason its stale or orphaned cells give and how many give it: one line where
    the table of every cell would repeat the same reason for each of a stage's cells."""
    stale = table[~table["state"].isin(["fresh", "verified"])]
    if stale.empty:
        return pd.DataFrame(columns=["cells"])
    return stale.groupby(["stage", "why"], sort=False).size().to_frame("cells")


def provenance_note(table: pd.DataFrame, profile: str) -> str:
    """One paragraph for the top of a page: are the results shown made by the code here?"""
    from ..grid.provenance import library_hash

    if table.empty:
        return f"Profile `{profile}` has no collected results yet."
    counts = table["state"].value_counts()
    n, stale, orphaned = len(table), int(counts.get("stale", 0)), int(counts.get("orphaned", 0))
    verified = int(counts.get("verified", 0))
    migrated = int(table["migrated"].sum())
    parts = [f"Profile `{profile}`: {n} collected result cell(s)."]
    if verified:
        parts.append(f"{verified} were made by older code and verified: a rerun by the code here now reproduced them.")
    if stale == 0 and orphaned == 0:
        parts.append("Every one was made by the code in this repository now" + (" or verified by it." if verified else "."))
    else:
        if stale:
            parts.append(f"**{stale} are stale**: made by other code than the notebook and library modules they run "
                         f"here now (library `{library_hash()}`; `genemask grid params/<profile>.yaml --status` lists "
                         "why, `--verify` reruns and compares them, `--rerun-stale` remakes them).")
        if orphaned:
            parts.append(f"**{orphaned} are orphaned**: the profile's params file no longer asks for them.")
    if migrated:
        parts.append(f"{migrated} were made before provenance was recorded; their records (migrated) name the commit "
                     "that first added them, whose library they ran or an older one.")
    return " ".join(parts)


def book_fingerprint(profile: str | None = None) -> str:
    """What the book's pages read, as one hash: the profile shown, its collected results and the
    library source. ``make book`` keeps one jupyter-cache per fingerprint, so a page is re-executed
    when its own code changed or when any of these did, never shown with outputs of other inputs."""
    import hashlib

    from ..grid.provenance import library_hash
    from .results import book_profile

    profile = profile or book_profile()
    digest = hashlib.sha256(f"{profile}\0{library_hash()}\0".encode())
    root = paths.results_dir(profile)
    for file in sorted(root.rglob("*")) if root.is_dir() else []:
        if file.is_file():
            digest.update(file.relative_to(root).as_posix().encode() + b"\0" + file.read_bytes())
    return f"{profile}-{digest.hexdigest()[:16]}"


def _state_key(profile: str) -> str:
    """What a cell's state depends on: the book's fingerprint (results, library), the profile's
    params file and the notebooks (their code is part of each cell's code hash)."""
    import hashlib

    digest = hashlib.sha256(book_fingerprint(profile).encode())
    for file in [paths.PARAMS / f"{profile}.yaml", *sorted(paths.NOTEBOOKS.glob("*.ipynb"))]:
        if file.is_file():
            digest.update(file.name.encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()[:16]


def shared_provenance_table(profile: str | None = None) -> pd.DataFrame:
    """:func:`provenance_table`, computed once for the pages of one build (seconds each otherwise):
    kept under the cache by what the states depend on, so a change of any of it recomputes."""
    from ..io import write_text
    from .results import book_profile

    profile = profile or book_profile()
    cached = paths.cache_dir() / "book" / f"provenance-{profile}-{_state_key(profile)}.csv"
    if cached.is_file():
        return pd.read_csv(cached, keep_default_na=False, na_values=[""], dtype={"key": str, "commit": str, "library": str})
    table = provenance_table(profile)
    write_text(cached, table.to_csv(index=False))
    return table


def freshness_line(stages: list[str] | tuple[str, ...] | None = None, profile: str | None = None,
                   table: pd.DataFrame | None = None) -> str:
    """One line for a results page: of the result cells its numbers come from (``stages``; all of
    the profile's when None), how many are fresh, verified and stale, with a link to the Provenance page."""
    from .results import book_profile

    profile = profile or book_profile()
    table = shared_provenance_table(profile) if table is None else table
    mine = table if stages is None else table[table["stage"].isin(list(stages))]
    if mine.empty:
        return f"*Freshness:* no collected results of {_stage_names(stages)} in profile `{profile}` yet."
    counts = mine["state"].value_counts()
    parts = [f"{int(counts.get(state, 0))} {state}" for state in ("fresh", "verified", "stale")]
    if counts.get("orphaned", 0):
        parts.append(f"{int(counts['orphaned'])} orphaned")
    whose = "this book's numbers come" if stages is None else f"this page's numbers come"
    # a stale cell of a stage whose sampled rerun came out equal is still stale (a sample verifies the
    # cells it reran, never more), but the reader can tell it from one whose stage no rerun has tested
    sampled_stages = set(table.loc[table["state"] == "verified", "stage"])
    stale = mine[mine["state"] == "stale"]
    sampled = int(stale["stage"].isin(sampled_stages).sum())
    sample_note = (f"Of the stale, {sampled} {'is' if sampled == 1 else 'are'} of stages where a rerun of a sample came out equal. " if sampled else "")
    return (f"*Freshness:* {whose} from {len(mine)} result cell{'s' if len(mine) != 1 else ''}"
            + ("" if stages is None else f" ({_stage_names(stages)})") + f": {', '.join(parts)}. " + sample_note
            + "[Provenance](provenance.html) says what each word means and why a cell is stale.")  # output Markdown: the HTML page


def _stage_names(stages) -> str:
    """The stages by name when a few, else their count (the line stays one line)."""
    names = [f"`{s}`" for s in stages or []]
    if not names:
        return "no stage"
    return ("stage " + names[0]) if len(names) == 1 else ("stages " + ", ".join(names)) if len(names) <= 3 else f"{len(names)} stages"
