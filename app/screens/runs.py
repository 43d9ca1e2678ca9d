"""The Runs page: every run in the runs directory (this server's and those of the command line or other
processes; failed and unreadable ones with their reason), with open/follow, resume, replay, export, delete with
confirmation, a training's search and a search's trainings, and comparisons (runs_compare.py)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from app import nav, state
from app.figures import labels, tables
from app.panels import cells, curves, exports, pt_run, pt_view, run_labels
from app.screens import runs_compare, runs_lineage
from engine.jobs.controller import JobError
from engine.runs import catalog
from engine.runs.catalog import RunInfo
from engine.runs.rundir import RunDirError
from engine.runtime.threads import apply_threads

__all__ = ["page", "render_table", "render_details", "RESUMABLE", "RUN_PARAM"]

RESUMABLE = ("interrupted", "stopped")
RUN_PARAM = "run"     # the run whose details are shown, kept in the URL (?run=<run id>)
_ACTIVE = ("queued", "running", "paused", "stopping")


def render_table(runs: Sequence[RunInfo]) -> None:
    """Every run with its settings; the toggle keeps only the settings that differ between them."""
    frame = runs_lineage.runs_table(runs)
    if st.toggle("Only the settings that differ", key="runs.differ", bind="query-params",
                 help="hide the setting columns (" + ", ".join(tables.SETTINGS) + ") that are the same for every "
                      "run listed"):
        frame = tables.differing_settings(frame)
    st.dataframe(frame, hide_index=True, width="stretch",
                 column_config={"valid acc": st.column_config.NumberColumn(format="%.3f"),
                                "lr": st.column_config.NumberColumn(help="network-weight learning rate"),
                                "a_lr": st.column_config.NumberColumn(help="architecture learning rate")})


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
        # torch's thread count is process-wide: the run's own (a training: auto), before its thread starts
        apply_threads(int(overrides.get("threads", info.config.get("threads", 0)) or 0))
        job = state.registry().start(resume=info.path, overrides=overrides)
    except (JobError, RunDirError, OSError, ValueError) as err:
        st.error(f"Could not resume {info.run_id}: {err}")
        return False
    if info.kind == "train":
        st.session_state["train.run_id"] = job.run_id  # the Train page shows this training
    else:
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


def _confirm_delete(info: RunInfo) -> None:
    if st.session_state.get("runs.confirm_delete") != info.run_id:
        return
    st.warning(f"Delete {info.run_id} and all its files? This cannot be undone.")
    yes, no = st.columns(2)
    if yes.button("Yes, delete it", key="runs.delete_yes", type="primary", width="stretch"):
        st.session_state.pop("runs.confirm_delete")
        _delete(info)
        st.rerun()
    if no.button("Cancel", key="runs.delete_no", width="stretch"):
        st.session_state.pop("runs.confirm_delete")
        st.rerun()


def _written_by(info: RunInfo) -> str:
    """' · dartboard 0.1.0 (git 1a2b3c4d5e6f)': the code that wrote the run, as its config.json records it
    (runs written before it did say nothing)."""
    record = runs_lineage.record(info).get("dartboard")
    if not isinstance(record, dict) or not record.get("version"):
        return ""
    commit = record.get("git_commit")
    return f" · dartboard {record['version']}" + (f" (git {str(commit)[:12]})" if commit else "")


def render_details(info: RunInfo, runs: Sequence[RunInfo] = ()) -> None:
    """One run: its state, its search or trainings, actions, genotype, curves and exports."""
    st.subheader(info.run_id)
    if info.state == catalog.UNREADABLE:
        st.caption(f"`{info.path}` · {info.state}")
        st.error(f"This run cannot be read: {info.error or 'no reason was recorded'}")
        if st.button("Delete run", key="runs.delete", width="stretch"):
            st.session_state["runs.confirm_delete"] = info.run_id
        _confirm_delete(info)
        return
    progress = labels.progress_text(info.epoch, info.epochs, info.step, info.total_steps)
    st.caption(f"`{info.path}` · {info.kind} · {info.state} · {progress}{_written_by(info)}")
    run_labels.label_box(info.run_id, info.path)
    runs_lineage.render_lineage(info, runs)
    if info.state == "failed":
        st.error(f"This run failed: {info.error or 'no error text was recorded'}")
    elif info.state == "interrupted":
        st.warning("This run ended without a final state (its process is gone). **Resume run** continues it "
                   "from its last checkpoint.")

    training = info.kind == "train"  # no alphas to watch or replay; it resumes with its own settings
    if training:
        st.caption("A training: its curves and exports are below; **Resume run** continues it on the Train page.")
    overrides = _resume_overrides(info) if _resumable(info) and not training else {}
    cols = st.columns(4)
    if cols[0].button("Open in Search", key="runs.open", width="stretch", disabled=training,
                      help="watch it on the Search page (runs of other processes are followed live)"):
        _open(info)
        nav.switch_to("search")
    if cols[1].button("Resume run", key="runs.resume", disabled=not _resumable(info), width="stretch",
                      help="continue an interrupted, stopped or failed run from its checkpoint"):
        if _resume(info, overrides):
            nav.switch_to("train" if training else "search")
    if cols[2].button("Replay", key="runs.replay", width="stretch", disabled=training):
        st.session_state["replay.run"] = info.run_id
        nav.switch_to("replay")
    if cols[3].button("Delete run", key="runs.delete", disabled=info.state in _ACTIVE, width="stretch"):
        st.session_state["runs.confirm_delete"] = info.run_id
    _confirm_delete(info)

    if info.genotype is not None:
        cells.render_dags(info.genotype, None, show_all=False)
        st.code(info.genotype.to_darts(), language="python", wrap_lines=True)
    else:
        st.info("No genotype recorded yet (one is written at each epoch end and on Derive now).")
    if not training:
        pt_run.render(info)    # run DARTS-PT on an ended search, or its progress
        pt_view.render(info)   # only where DARTS-PT ran on this search
    curves.render(state.metrics_records(info.path), key="runs", space=info.space)
    st.markdown("**Export**")
    exports.render(lambda: info.genotype, str(info.path), info.run_id, key="runs",
                   has_genotype=info.genotype is not None)


def page() -> None:
    reg = state.registry()
    st.title("Runs")
    state.show_flash()
    runs = catalog.list_runs(reg.runs_dir)
    st.caption(f"Runs directory: `{reg.runs_dir}`")
    runs_lineage.render_failed_jobs(runs)
    if not runs:
        st.info("No runs yet. Start one on the Search page, or from a terminal: "
                "`python -m engine search --preset demo`.")
        return
    render_table(runs)
    ids = [r.run_id for r in runs]
    paths = {r.run_id: r.path for r in runs}
    # the run shown lives in the URL (?run=<id>): a link or a reload opens the same run
    wanted = st.query_params.get(RUN_PARAM)
    if wanted in ids and "runs.selected" not in st.session_state:
        st.session_state["runs.selected"] = wanted
    chosen = st.selectbox("Run", ids, key="runs.selected", format_func=lambda rid: run_labels.named(rid, paths[rid]))
    st.query_params[RUN_PARAM] = chosen
    render_details(next(r for r in runs if r.run_id == chosen), runs)
    st.divider()
    st.header("Searches side by side")
    runs_compare.render_searches(runs)
    st.divider()
    st.header("Trainings compared")
    st.caption("Was the search worth it? The found cell against DARTS_V2 and random cells, trained alike.")
    runs_compare.render_trainings(runs)
