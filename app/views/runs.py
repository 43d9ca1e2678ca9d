"""The Runs page: every run in the runs directory (this server's and those of the command line or other
processes), with open/follow, resume, replay, export, delete with confirmation, and a two-run comparison."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app import figures, nav, state
from app.views import cells, curves, exports
from engine import catalog
from engine.catalog import RunInfo
from engine.job import JobError
from engine.rundir import RunDirError

__all__ = ["page", "render_table", "render_details", "render_compare", "RESUMABLE"]

RESUMABLE = ("interrupted", "stopped")
_ACTIVE = ("queued", "running", "paused", "stopping")
_OVERLAID = {"valid_acc": "Validation accuracy", "valid_loss": "Validation loss", "train_loss": "Training loss"}


def render_table(runs: Sequence[RunInfo]) -> None:
    st.dataframe(figures.runs_frame(runs), hide_index=True, width="stretch",
                 column_config={"valid acc": st.column_config.NumberColumn(format="%.3f")})


def _open(info: RunInfo) -> None:
    job = state.registry().get(info.run_id)
    if job is None:
        state.registry().follow(info.path)
    state.select_run(info.run_id)


def _resumable(info: RunInfo) -> bool:
    """Interrupted and stopped runs; a failed one too when it left a checkpoint (e.g. out of memory)."""
    return info.state in RESUMABLE or (info.state == "failed" and (info.path / "checkpoint.pt").exists())


def _resume_overrides(info: RunInfo) -> dict:
    """How the resumed search optimises: the run's values by default, lowered after a NaN, say."""
    cfg = info.config
    with st.expander("Resume with other settings"):
        c = st.columns(3)
        w_lr = c[0].number_input("Weight lr", min_value=0.0, value=float(cfg.get("w_lr", 0.025)), format="%.5f",
                                 key=f"runs.{info.run_id}.w_lr")
        a_lr = c[1].number_input("Arch. lr", min_value=0.0, value=float(cfg.get("a_lr", 3e-4)), format="%.5f",
                                 key=f"runs.{info.run_id}.a_lr")
        order = c[2].selectbox("Order", ("first", "second"), index=0 if cfg.get("order") != "second" else 1,
                               key=f"runs.{info.run_id}.order")
    return {"w_lr": w_lr, "a_lr": a_lr, "order": order}


def _resume(info: RunInfo, overrides: dict) -> bool:
    try:
        job = state.registry().start(resume=info.path, overrides=overrides)
    except (JobError, RunDirError, OSError, ValueError) as err:
        st.error(f"Could not resume {info.run_id}: {err}")
        return False
    state.select_run(job.run_id)
    return True


def _delete(info: RunInfo) -> None:
    try:
        catalog.delete_run(info.path, state.registry().runs_dir)
    except (RunDirError, OSError) as err:
        state.flash("error", f"Could not delete {info.run_id}: {err}")
        return
    if st.session_state.get("run_id") == info.run_id:
        st.session_state.pop("run_id")
    state.flash("success", f"Deleted {info.run_id}.")


def render_details(info: RunInfo) -> None:
    """One run: its state, actions, genotype, curves and exports."""
    st.subheader(info.run_id)
    progress = figures.progress_text(info.epoch, info.epochs, info.step, info.total_steps)
    st.caption(f"`{info.path}` · {info.state} · {progress}")
    if info.state == "failed":
        st.error(f"This run failed: {info.error or 'no error text was recorded'}")
    elif info.state == "interrupted":
        st.warning("This run ended without a final state (its process is gone). **Resume run** continues it "
                   "from its last checkpoint.")

    overrides = _resume_overrides(info) if _resumable(info) else {}
    cols = st.columns(4)
    if cols[0].button("Open in Search", key="runs.open", width="stretch",
                      help="watch it on the Search page (runs of other processes are followed live)"):
        _open(info)
        nav.switch_to("search")
    if cols[1].button("Resume run", key="runs.resume", disabled=not _resumable(info), width="stretch",
                      help="continue an interrupted, stopped or failed run from its checkpoint"):
        if _resume(info, overrides):
            nav.switch_to("search")
    if cols[2].button("Replay", key="runs.replay", width="stretch"):
        st.session_state["replay.run"] = info.run_id
        nav.switch_to("replay")
    if cols[3].button("Delete run", key="runs.delete", disabled=info.state in _ACTIVE, width="stretch"):
        st.session_state["runs.confirm_delete"] = info.run_id

    if st.session_state.get("runs.confirm_delete") == info.run_id:
        st.warning(f"Delete {info.run_id} and all its files? This cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete it", key="runs.delete_yes", type="primary", width="stretch"):
            st.session_state.pop("runs.confirm_delete")
            _delete(info)
            st.rerun()
        if no.button("Cancel", key="runs.delete_no", width="stretch"):
            st.session_state.pop("runs.confirm_delete")
            st.rerun()

    if info.genotype is not None:
        cells.render_dags(info.genotype, None, show_all=False)
        st.code(info.genotype.to_darts(), language="python", wrap_lines=True)
    else:
        st.info("No genotype recorded yet (one is written at each epoch end and on Derive now).")
    curves.render(state.metrics_records(info.path), key="runs")
    st.markdown("**Export**")
    exports.render(lambda: info.genotype, str(info.path), info.run_id, key="runs",
                   has_genotype=info.genotype is not None)


def render_compare(runs: Sequence[RunInfo]) -> None:
    """Two runs: genotypes side by side (cells and a table of edges), curves overlaid."""
    ids = [r.run_id for r in runs]
    left, right = st.columns(2)
    a_id = left.selectbox("Run A", ids, index=0, key="runs.compare_a")
    b_id = right.selectbox("Run B", ids, index=min(1, len(ids) - 1), key="runs.compare_b")
    a, b = (next(r for r in runs if r.run_id == x) for x in (a_id, b_id))
    for col, info, name in ((left, a, "A"), (right, b, "B")):
        with col:
            if info.genotype is None:
                st.info(f"Run {name} has no genotype yet.")
                continue
            for cell, title in cells.CELLS.items():
                st.markdown(f"**{name}: {title}**")
                st.graphviz_chart(figures.cell_dot(info.genotype, cell=cell), width="stretch")
    if a.genotype is not None and b.genotype is not None:
        frame = figures.compare_genotypes_frame(a.genotype, b.genotype)
        st.dataframe(frame, hide_index=True, width="stretch")
        st.caption(f"{(frame['same'] == 'yes').sum()} of {len(frame)} edges are the same.")
    metrics = {f"A {a.run_id}": state.metrics_records(a.path), f"B {b.run_id}": state.metrics_records(b.path)}
    cols = st.columns(len(_OVERLAID))
    for col, (key, title) in zip(cols, _OVERLAID.items(), strict=True):
        col.plotly_chart(figures.overlay_figure(metrics, key, title=title), key=f"runs.compare.{key}")


def page() -> None:
    reg = state.registry()
    st.title("Runs")
    state.show_flash()
    runs = catalog.list_runs(reg.runs_dir)
    st.caption(f"Runs directory: `{reg.runs_dir}`")
    if not runs:
        st.info("No runs yet. Start one on the Search page, or from a terminal: "
                "`python -m engine search --preset demo`.")
        return
    render_table(runs)
    ids = [r.run_id for r in runs]
    chosen = st.selectbox("Run", ids, key="runs.selected")
    render_details(next(r for r in runs if r.run_id == chosen))
    st.divider()
    st.header("Compare two runs")
    if len(runs) < 2:
        st.info("Comparing needs two runs.")
    else:
        render_compare(runs)
