"""The Sweeps page: a sweep's members and their state live, and per group of seeds what they found: the spread
of the final figures, curves as bands, how often each op won each edge, the distinct cells, and whether two
groups differ by more than the seeds do (engine/sweep/report.py). The sweep, the filters and the compared
groups are bound to the URL, so a link opens the same view."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from app import nav, state
from app.figures import alt
from app.figures.sweeps import band_figure, win_frequency_figure
from app.screens import replay
from engine.runs import examples, rundir
from engine.sweep.control import steer
from engine.sweep.gate import sweep_gate
from engine.sweep.report import FIGURES, compare_groups, group_summaries, member_results
from engine.sweep.spec import SWEEP_FILE, Sweep, SweepError, load_sweep

__all__ = ["page", "sweep_dirs", "shipped_key", "SHIPPED_CAPTION"]

_ACTIVE = ("queued", "running", "paused", "stopping")
_CURVES = {"valid_acc": "Supernet validation accuracy", "skips_normal": "Skip connections, normal cell",
           "hessian_eig": "Hessian eigenvalue (sharpness)", "expected_madds": "Expected mult-adds (cost)"}
_START = ("python -m engine sweep --preset demo --grid variant=darts,beta_darts --seeds 4 --jobs 2")
_SHIPPED = "shipped:"   # the URL's prefix for a sweep shipped with dartboard (assets/sweeps/)
SHIPPED_CAPTION = "A sweep recorded with dartboard and shipped with it"


def sweep_dirs(root: Path) -> list[Path]:
    """The sweeps under the runs root's sweeps/, newest name first."""
    base = root / "sweeps"
    if not base.is_dir():
        return []
    return sorted((p for p in base.iterdir() if (p / SWEEP_FILE).is_file()), key=lambda p: p.name, reverse=True)


def _members_frame(sweep: Sweep, results, varied: list[str]) -> pd.DataFrame:
    rows = []
    for r in results:
        rows.append({"member": r.member.name, "state": r.state, "step": r.step,
                     **{k: str(r.member.settings.get(k)) for k in varied}, "seed": r.member.settings["seed"],
                     "valid acc": r.figures.get("valid_acc"), "skips (normal)": r.figures.get("skips_normal")})
    return pd.DataFrame(rows)


def _groups_frame(groups) -> pd.DataFrame:
    rows = []
    for g in groups:
        row: dict[str, object] = {"group": g.label, "seeds": len(g.members)}
        for key in FIGURES:
            s = g.stats[key]
            if s["n"]:
                spread = "" if s["std"] is None else f" ± {s['std']:.3f}"
                row[key] = f"{s['mean']:.3f}{spread} (n={s['n']})"
        row["distinct cells"] = len(g.cells)
        rows.append(row)
    return pd.DataFrame(rows)


def _filters(sweep: Sweep) -> dict[str, list[str]]:
    """One multiselect per varied setting (all values by default), bound to the URL."""
    chosen = {}
    if not sweep.grid:
        return chosen
    cols = st.columns(len(sweep.grid))
    for col, (key, values) in zip(cols, sweep.grid.items(), strict=True):
        options = [str(v) for v in values]
        chosen[key] = col.multiselect(key, options, default=options, key=f"sweep_{key}", bind="query-params",
                                      help=f"show only the members with these values of {key}")
    return chosen


def _body(sweep: Sweep) -> None:
    results = member_results(sweep)
    chosen = _filters(sweep)
    shown = [r for r in results if all(str(r.member.settings.get(k)) in v for k, v in chosen.items())]
    states = pd.Series([r.state for r in results]).value_counts().to_dict()
    st.caption(f"{len(results)} members ({', '.join(f'{n} {s}' for s, n in states.items())}); preset "
               f"`{sweep.preset}`, seeds {sweep.seeds}; supernet figures describe the search, not the quality of "
               "the cells it derives (train them to know that).")
    _steering(sweep, [r.state for r in results + member_results(sweep, "train")])
    varied = list(sweep.grid)
    st.dataframe(_members_frame(sweep, shown, varied), hide_index=True, width="stretch",
                 column_config={"valid acc": st.column_config.NumberColumn(format="%.3f")})
    if not shown:
        st.info("No member matches these filters.")
        return
    groups = group_summaries(shown)
    st.subheader("Per group of seeds")
    st.dataframe(_groups_frame(groups), hide_index=True, width="stretch")
    if len(groups) >= 2:
        labels = [g.label for g in groups]
        c = st.columns(2)
        first = c[0].selectbox("Compare", labels, index=0, key="sweep_a", bind="query-params")
        second = c[1].selectbox("with", labels, index=1, key="sweep_b", bind="query-params")
        by_label = {g.label: g for g in groups}
        if first != second:
            st.markdown(compare_groups(by_label[first], by_label[second]))
        st.caption("The test: an exact permutation test of the difference of the group means. It assumes only "
                   "that the seeds' results would be exchangeable between the groups if the setting did not "
                   "matter; with few seeds only a clear difference can reach p ≤ 0.05.")
    curve = st.selectbox("Curve", list(_CURVES), format_func=_CURVES.get, key="sweep_curve", bind="query-params")
    runs = {g.label: [state.metrics_records(sweep.run_dir(r.member)) for r in g.members
                      if (sweep.run_dir(r.member) / rundir.CONFIG).exists()] for g in groups}
    band = band_figure(runs, curve, f"{_CURVES[curve]}: mean and range over the seeds")
    st.plotly_chart(band, key="sweep_band", alt=alt.plotly_alt(band))
    with_alphas = [g for g in groups if g.win_freq]
    if with_alphas:
        st.subheader("How often each op won each edge")
        c = st.columns(2)
        label = c[0].selectbox("Group", [g.label for g in with_alphas], key="sweep_group")
        kind = c[1].radio("Cell", ("normal", "reduce"), horizontal=True, key="sweep_cell")
        g = next(x for x in with_alphas if x.label == label)
        left, right = st.columns(2)
        wins = win_frequency_figure(g.win_freq[kind], f"{kind} cell: share of seeds whose op won")
        left.plotly_chart(wins, key="sweep_wins", alt=alt.plotly_alt(wins))
        from app.figures.heatmaps import heatmap

        mean = heatmap(g.mean_weights[kind], title=f"{kind} cell: mean op weights over the seeds")
        right.plotly_chart(mean, key="sweep_mean", alt=alt.plotly_alt(mean))
        st.markdown("**Distinct cells found**")
        for cell, n in g.cells:
            st.markdown(f"{n} of {len(g.members)} seed(s)")
            st.code(cell, language=None, wrap_lines=True)
    if sweep.trainings:
        _trained(sweep)
    _open_member(sweep, shown)


def _steering(sweep: Sweep, states: list[str]) -> None:
    """Pause, resume or stop the whole sweep: its running members after their step, and its gate, which keeps the
    members that have not begun from starting (engine/sweep/control.py). One member: Open in Search."""
    if examples.is_example(sweep.path) or all(s == "finished" for s in states):
        return
    gate = sweep_gate(sweep.path)
    allowed = {"pause": gate == "running", "resume": gate == "paused" or "paused" in states,
               "stop": gate != "stopped"}
    labels = {"pause": "Pause the sweep", "resume": "Resume the sweep", "stop": "Stop the sweep"}
    cols = st.columns(len(labels) + 1, vertical_alignment="center")
    for col, (command, label) in zip(cols, labels.items(), strict=False):
        col.button(label, key=f"sweep_{command}", disabled=not allowed[command], on_click=_steer,
                   args=(sweep, command, label))
    note = {"paused": "Paused: running members pause after their step and no member starts until it is resumed.",
            "stopped": "Stopped: no member starts again."}.get(gate, "")
    if gate == "stopped" or not any(s in _ACTIVE for s in states):
        note += (f" `python -m engine sweep --resume {sweep.path}` continues it: finished members are kept, stopped "
                 "ones go on from their checkpoints.")
    cols[-1].caption(note.strip() or "One member: Open in Search below pauses, steps or stops it alone.")


def _steer(sweep: Sweep, command: str, label: str) -> None:
    """A button's callback: it runs before the page is drawn again, so the buttons show the new state."""
    st.toast(f"{label}: asked {steer(sweep, command)} running member(s)")


def _trained(sweep: Sweep) -> None:
    """The second stage: each found cell (and the baselines) trained on the same budget, by group."""
    st.subheader(f"Trained cells (`{sweep.train_preset}`)")
    results = member_results(sweep, "train")
    st.dataframe(pd.DataFrame([{"training": r.member.name, "state": r.state, "step": r.step,
                                "cell": r.member.settings.get("cell"), "test acc": r.figures.get("test_acc")}
                               for r in results]), hide_index=True, width="stretch",
                 column_config={"test acc": st.column_config.NumberColumn(format="%.3f")})
    groups = [g for g in group_summaries(results) if g.stats["test_acc"]["n"]]
    for g in groups:
        s = g.stats["test_acc"]
        spread = "" if s["std"] is None else f" ± {s['std']:.3f}"
        st.markdown(f"- **{g.label}**: test accuracy {s['mean']:.3f}{spread} over {s['n']} cell(s)")
    for a, b in zip(groups, groups[1:], strict=False):
        st.markdown(compare_groups(a, b, "test_acc"))


def _open_member(sweep: Sweep, shown) -> None:
    started = [r for r in shown if (sweep.run_dir(r.member) / rundir.CONFIG).exists()]
    if not started:
        return
    c = st.columns([3, 1, 1], vertical_alignment="bottom")
    name = c[0].selectbox("Member", [r.member.name for r in started], key="sweep_member")
    run_dir = sweep.run_dir(name)
    if c[1].button("Open in Search", key="sweep_open", help="follow this member's run on the Search page"):
        reg = state.registry()
        if reg.get(run_dir.name) is None:
            reg.follow(run_dir)
        state.select_run(run_dir.name)
        nav.switch_to("search")
    if c[2].button("Open in Replay", key="sweep_replay", help="step through this member's recorded op weights"):
        replay.open_run(run_dir)
        nav.switch_to("replay")


def _choices(root: Path) -> dict[str, Path]:
    """The sweeps to choose from, by the name the URL keeps: this runs root's, newest first, then the ones shipped
    with dartboard (`shipped:NAME`), so the page has a real sweep to show on a fresh machine."""
    out = {p.name: p for p in sweep_dirs(root)}
    out.update({shipped_key(p.name): p for p in examples.shipped_sweeps()})
    return out


def shipped_key(name: str) -> str:
    """The page's (and the URL's) name for the sweep `name` shipped with dartboard."""
    return f"{_SHIPPED}{name}"


def page() -> None:
    st.title("Sweeps")
    choices = _choices(state.registry().runs_dir)
    if not any(not k.startswith(_SHIPPED) for k in choices):
        st.info("No sweep in this runs directory yet. A sweep runs one search per setting and seed, so a result "
                "is a distribution rather than one run. Start one from a terminal:")
        st.code(_START, language="bash")
        if not choices:
            return
        st.caption("Meanwhile, here is a sweep recorded with dartboard:")
    names = list(choices)
    # no format_func: a bound selectbox keeps the formatted label in the URL, and `shipped:collapse` reads better
    name = st.selectbox("Sweep", names, key="sweep", bind="query-params")
    try:
        sweep = load_sweep(choices[name])
    except SweepError as e:
        st.error(str(e))
        return
    if name.startswith(_SHIPPED):
        st.caption(f"{SHIPPED_CAPTION}: its members are recordings (no checkpoints), to study and replay.")
    active = any(r in _ACTIVE for r in (_quick_states(sweep)))

    @st.fragment(run_every=2.0 if active else None)
    def live() -> None:
        _body(sweep)

    live()


def _quick_states(sweep: Sweep) -> list[str]:
    from engine.sweep.run import member_states

    return list(member_states(sweep).values())
