"""The Learn page: DARTS for someone new to neural architecture search, told with this app's own figures
on a live or recorded run, and set beside the paper's DARTS_V2 cell."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from app import nav, state
from app.figures import alt, cells_dot, collapse, labels, replay, tables
from app.panels import cells, collapse_film
from app.screens import learn_pt, learn_rnn, learn_sweep
from engine.runs import catalog, examples
from engine.search.collapse import count_ops
from engine.space import DEFAULT_SPACE
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype, genotype_from_weights
from engine.variants import variant_class, variant_names

__all__ = ["page", "render", "LESSON_LABEL", "LESSON_KEY", "COLLAPSE_LESSON", "LessonRun", "lesson_runs",
           "raw_alpha_steps"]

_PAPER = "DARTS_V2"
_TEXT = Path(__file__).with_name("learn_text")   # the page's prose, one markdown file per passage
_NEXT = "\n<!-- next -->\n"                      # splits a file into the page elements it is drawn as


def _prose(name: str, **values: str) -> None:
    """Draw learn_text/<name>.md, each part between `<!-- next -->` lines as one element (a ```latex block as an
    equation), with `{{key}}` filled in from `values`."""
    text = (_TEXT / f"{name}.md").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    for part in text.strip("\n").split(_NEXT):
        if part.startswith("```latex\n"):
            st.latex(part.removeprefix("```latex\n").removesuffix("\n```"))
        else:
            st.markdown(part)


@st.cache_data(show_spinner=False)
def raw_alpha_steps() -> tuple[int, int] | None:
    """(recorded steps whose cell changes when edges are ranked by raw alphas instead of op weights, recorded steps)
    on the demo recording shipped with dartboard; None when this copy has no such recording."""
    info = examples.example(examples.DEFAULT_EXAMPLE)
    records = state.alphas_records(info.path) if info is not None else []
    if not records:
        return None
    differ = 0
    for r in records:
        w = replay.record_weights(r)
        differ += (genotype_from_weights(np.asarray(r["normal"]), np.asarray(r["reduce"]))
                   != genotype_from_weights(w["normal"], w["reduce"]))
    return differ, len(records)


def _raw_alpha_figure() -> str:
    measured = raw_alpha_steps()
    if measured is None:
        return ""
    return (f" On the demo recording shipped with dartboard, ranking by raw alphas gives another cell at {measured[0]}"
            f" of its {measured[1]} recorded steps.")


def _intro() -> None:
    _prose("intro")
    st.code(", ".join(PRIMITIVES), language=None)
    _prose("cell_kinds")


def _relaxation(weights: Mapping[str, Any] | None, key: str) -> None:
    st.header("1. Continuous relaxation")
    _prose("relaxation")
    if weights:
        mode = cells.mode_picker(key=f"{key}.mode")
        cells.render_heatmaps(weights, None, mode, key=key)
    else:
        st.info("Start a search (Search page) or pick a recorded run above to see its op weights here.")


def _bilevel() -> None:
    st.header("2. Bilevel optimisation")
    _prose("bilevel")


def _derivation(weights: Mapping[str, Any] | None, genotype: Genotype | None, valid_acc: float | None) -> None:
    st.header("3. From op weights to a cell: the derivation rule")
    acc = "" if valid_acc is None else f" (this run's supernet: {valid_acc:.2f})"
    _prose("derivation", raw_alpha=_raw_alpha_figure(), acc=acc)
    if genotype is None:
        st.info("No run to derive from yet.")
        return
    show_all = st.toggle("Show every candidate edge", key="learn.show_all")
    cells.render_dags(genotype, weights, show_all)
    st.code(genotype.to_darts(), language="python", wrap_lines=True)
    learn_pt.render(_prose)  # the same question asked of the supernet: DARTS-PT on a recorded demo search


def _collapse(records: Sequence[Mapping[str, Any]], key: str, variant: str | Mapping[str, Any]) -> None:
    st.header("4. Skip-connection collapse")
    _prose("collapse")
    _collapse_lesson()
    if len(records) < 2:
        st.info("This needs a run with at least two recorded steps.")
        return
    places = [st.container() for _ in range(2)] if cells.lecture_on() else list(st.columns(2))
    for place, cell in zip(places, ("normal", "reduce"), strict=True):
        share = collapse.op_share_figure(records, cell, variant)
        place.plotly_chart(share, key=f"{key}.share.{cell}", alt=alt.plotly_alt(share, f"{cell} cell: op shares"))
    last = replay.record_genotype(records[-1], variant)
    skips = sum(op == "skip_connect" for op, _ in last.normal)
    st.caption(f"The normal cell derived at the last recorded step has {skips} skip connection(s) out of "
               f"{len(last.normal)} edges (the paper's DARTS_V2 normal cell has 2).")


# The one-click collapse lesson: the `collapse` preset (engine/search/config.py) searched once per variant, shipped as
# recordings (assets/runs/*-example-<name>, scripts/record_example.py), so it works before any search has run.
COLLAPSE_LESSON = (("DARTS", "collapse-darts"), ("DARTS-", "collapse-darts-minus"),
                   ("beta-DARTS", "collapse-beta-darts"))
LESSON_LABEL = "Watch DARTS collapse: DARTS vs DARTS- vs beta-DARTS"
LESSON_KEY = "learn.collapse_lesson"   # session state: the lesson stays open across reruns until closed
LESSON_EVERY = 50      # the summary's counts every 50 steps, as docs/collapse.md's table
# Before this step (4 epochs) the alphas are still close to uniform and the derived cell flips between ops
# almost at random (the recordings show a skip connection now and then in all three); the summary's "at most"
# starts here.
LESSON_SETTLED = 100


@dataclass(frozen=True)
class LessonRun:
    """One recording of the lesson: its normal cell's counts at every step and the cell derived at its last."""
    label: str
    info: catalog.RunInfo
    metrics: list[dict[str, Any]]
    genotype: Genotype

    @property
    def counts(self) -> tuple[list[int], list[int], list[int]]:
        return collapse.normal_cell_counts(self.metrics)

    def summary(self) -> str:
        """What the run measured, in one line: its last normal cell's counts, its skips every LESSON_EVERY steps,
        its most skips from LESSON_SETTLED on, and its supernet's validation accuracy."""
        steps, skips, _ = self.counts
        final = count_ops(self.genotype, "normal")
        by_step = dict(zip(steps, skips, strict=True))
        every = ", ".join(str(by_step[s]) for s in steps if s % LESSON_EVERY == 0)
        later = [(k, s) for s, k in zip(steps, skips, strict=True) if s >= LESSON_SETTLED]
        peak, at = max(later, key=lambda ks: (ks[0], -ks[1]), default=(0, 0))
        most = (f"at most {peak} from step {LESSON_SETTLED} on (step {at})" if peak
                else f"none from step {LESSON_SETTLED} on")
        acc = "" if self.info.valid_acc is None else f"; supernet validation accuracy {self.info.valid_acc:.3f}"
        return (f"**{self.label}** (`variant={self.info.config.get('variant')}`): {final['skips']} skip "
                f"connection(s) and {final['param_free']} parameter-free op(s) of {len(self.genotype.normal)} in "
                f"its last normal cell (step {self.info.step}); skip connections every {LESSON_EVERY} steps: "
                f"{every}; {most}{acc}.")


def lesson_runs() -> list[LessonRun]:
    """The lesson's recordings that ship with this copy of dartboard, in COLLAPSE_LESSON's order."""
    out = []
    for label, name in COLLAPSE_LESSON:
        info = examples.example(name)
        records = state.alphas_records(info.path) if info is not None else []
        if info is None or not records:
            continue
        genotype = replay.record_genotype(records[-1], dict(info.config or {}))
        out.append(LessonRun(label, info, state.metrics_records(info.path), genotype))
    return out


def _collapse_lesson() -> None:
    """The button, and once pressed the lesson: the three runs' counts on one scale, their last normal cells,
    and what the recordings measured."""
    if not st.session_state.get(LESSON_KEY):
        if st.button(LESSON_LABEL, key="learn.collapse_lesson.open", type="primary", icon=":material/play_arrow:"):
            st.session_state[LESSON_KEY] = True
            st.rerun()
        return
    runs = lesson_runs()
    with st.container(border=True, key="learn.collapse_lesson.body"):
        st.subheader(LESSON_LABEL)
        if not runs:
            st.info("The lesson's recordings (assets/runs/*-example-collapse-*) are not in this copy of dartboard.")
        else:
            _prose("lesson")
            lecture = cells.lecture_on()
            by_label = {r.label: r.metrics for r in runs}
            places = [st.container() for _ in range(2)] if lecture else list(st.columns(2))
            for place, count in zip(places, ("skips", "param_free"), strict=True):
                counts = collapse.collapse_counts_figure(by_label, count, lecture=lecture, settled=LESSON_SETTLED)
                place.plotly_chart(counts, key=f"learn.collapse_lesson.{count}",
                                   alt=alt.plotly_alt(counts, f"{count} per normal cell against the step"))
            collapse_film.render(runs, lecture=lecture)
            st.markdown("\n".join(f"- {r.summary()}" for r in runs))
            _prose("lesson_result", settled=str(LESSON_SETTLED))
            columns = [st.container() for _ in runs] if lecture else list(st.columns(len(runs)))
            for place, run in zip(columns, runs, strict=True):
                with place:
                    st.markdown(f"**{run.label}**")
                    st.graphviz_chart(cells_dot.cell_dot(run.genotype, cell="normal", lecture=lecture), width="stretch",
                                      alt=alt.cell_alt(run.genotype, "normal"))
                    final = count_ops(run.genotype, "normal")
                    st.caption(f"{final['skips']} skip connection(s), {final['param_free']} parameter-free of "
                               f"{len(run.genotype.normal)} · {run.info.run_id}")
                    if st.button("Replay it", key=f"learn.collapse_lesson.replay.{run.info.run_id}",
                                 help="step through this recording on the Replay page"):
                        st.session_state["replay.run"] = run.info.run_id
                        nav.switch_to("replay")
        learn_sweep.render(_prose, LESSON_SETTLED, cells.lecture_on())
        if st.button("Close the lesson", key="learn.collapse_lesson.close"):
            st.session_state[LESSON_KEY] = False
            st.rerun()


def _paper(genotype: Genotype | None, num_classes: int) -> None:
    st.header("5. The paper's cell")
    paper = KNOWN_GENOTYPES[_PAPER]
    _prose("paper")
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{_PAPER}**")
        for cell, title in cells.CELLS.items():
            st.caption(title)
            st.graphviz_chart(cells_dot.cell_dot(paper, cell=cell, lecture=cells.lecture_on()), width="stretch",
                              alt=alt.cell_alt(paper, cell))
        st.metric("Parameters (C=36, 20 cells, 10 classes)",
                  f"{state.param_count(json.dumps(paper.to_dict(), sort_keys=True), 10):,}")
    with right:
        st.markdown("**This run**")
        if genotype is None:
            st.info("No run to compare with yet.")
            return
        for cell, title in cells.CELLS.items():
            st.caption(title)
            st.graphviz_chart(cells_dot.cell_dot(genotype, cell=cell, lecture=cells.lecture_on()),
                              width="stretch", alt=alt.cell_alt(genotype, cell))
        st.metric(f"Parameters (C=36, 20 cells, {num_classes} classes)",
                  f"{state.param_count(json.dumps(genotype.to_dict(), sort_keys=True), num_classes):,}")
    st.dataframe(tables.compare_genotypes_frame(paper, genotype, names=(_PAPER, "this run")), hide_index=True,
                 width="stretch")


def _variants(variant: str) -> None:
    """One lesson per variant that has one, as each variant declares it (engine/variants/; docs/variants.md has the
    details and where the official code differs from the paper)."""
    st.header("6. Variants of DARTS")
    st.markdown("Some variants change how the alphas become op weights, or what runs in a step; others regularise "
                "DARTS against collapse (section 4). Pick one in the sidebar: `variant`.")
    for name in variant_names():
        cls = variant_class(name)
        if not cls.lesson:
            continue
        with st.expander(cls.lesson_title + (" (this run)" if name == variant else ""), expanded=name == variant):
            st.markdown(cls.lesson)
            st.caption(cls.paper)


def render(records: Sequence[Mapping[str, Any]], num_classes: int = 10, key: str = "learn",
           variant: str | Mapping[str, Any] = "darts", valid_acc: float | None = None) -> None:
    """The lesson on one run's recorded alphas (empty: the lesson with the paper's cell only); `variant` is
    the run's (its name, or its config: then its options and skip cap too), which turns the records into op
    weights and a cell."""
    name = variant if isinstance(variant, str) else str(variant.get("variant", "darts"))
    weights = replay.record_weights(records[-1], variant) if records else None
    genotype = replay.record_genotype(records[-1], variant) if records else None
    _intro()
    _relaxation(weights, key)
    _bilevel()
    _derivation(weights, genotype, valid_acc)
    _collapse(records, key, variant)
    _paper(genotype, num_classes)
    _variants(name)


def page() -> None:
    reg = state.registry()
    cells.lecture_toggle()
    st.title("Learn DARTS")
    # this machine's searches, then the recordings shipped with the app, so the lesson has a real run at once
    searches = [r for r in catalog.list_runs(reg.runs_dir) if r.kind != "train"] + examples.example_runs()
    runs = [r for r in searches if r.space == DEFAULT_SPACE]  # sections 1-6 read the convolutional cell
    records: list[dict[str, Any]] = []
    classes, variant, valid_acc = 10, "darts", None
    if runs:
        ids = [r.run_id for r in runs]
        job = state.selected_job(reg)
        index = ids.index(job.run_id) if job is not None and job.run_id in ids else 0
        run_id = st.selectbox("Run to learn from", ids, index=index, key="learn.run",
                              help="the live search, or any recorded run; figures show its latest step")
        info = next(r for r in runs if r.run_id == run_id)
        records = state.alphas_records(info.path)
        classes = state.num_classes_of(info.config)
        variant = dict(info.config or {"variant": "darts"})  # its variant's options and skip cap count
        valid_acc = info.valid_acc
        st.caption(f"{info.state} · {labels.progress_text(info.epoch, info.epochs, info.step, info.total_steps)}"
                   " · this page redraws when you interact with it; the Search page is the live view")
    else:
        st.caption("No runs yet: the figures below appear once a search has run (Search page).")
    render(records, classes, variant=variant, valid_acc=valid_acc)
    learn_rnn.render(searches, _prose)
