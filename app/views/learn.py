"""The Learn page: DARTS for someone new to neural architecture search, told with this app's own figures
on a live or recorded run, and set beside the paper's DARTS_V2 cell."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import streamlit as st

from app import figures, nav, state
from app.views import cells
from engine.runs import catalog, examples
from engine.search.collapse import count_ops
from engine.space.cnn.cell import PRIMITIVES
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype

__all__ = ["page", "render", "LESSON_LABEL", "LESSON_KEY", "COLLAPSE_LESSON", "LessonRun", "lesson_runs"]

_PAPER = "DARTS_V2"
# Measured on the demo recording shipped with dartboard (assets/runs/...-example-demo, 250 recorded steps):
# deriving each step's cell with edges ranked by raw alphas instead of op weights (tests/test_lecture.py checks it).
RAW_ALPHA_STEPS = (240, 250)
RAW_ALPHA_FIGURE = (f"On the demo recording shipped with dartboard, ranking by raw alphas gives another cell at "
                    f"{RAW_ALPHA_STEPS[0]} of its {RAW_ALPHA_STEPS[1]} recorded steps.")


def _intro() -> None:
    st.markdown(
        "**Neural architecture search** looks for the wiring of a network instead of hand-designing it. "
        "DARTS (Liu, Simonyan and Yang, ICLR 2019) searches for one small building block, a **cell**, "
        "and stacks copies of it into a network. A cell is a little graph: two inputs (the outputs of "
        "the two previous cells, $c_{k-2}$ and $c_{k-1}$; the figures write them c(k-2) and c(k-1)), four "
        "intermediate **nodes**, and an output $c_k$ that concatenates the nodes. Node *i* may take any "
        "earlier state as input, which gives "
        "2 + 3 + 4 + 5 = **14 candidate edges**. On each edge one of **8 operations** could sit:")
    st.code(", ".join(PRIMITIVES), language=None)
    st.markdown(
        "Two kinds of cell are searched: a **normal** cell that keeps the image size, and a **reduction** "
        "cell (used at 1/3 and 2/3 of the depth) whose edges from the inputs have stride 2.")


def _relaxation(weights: Mapping[str, Any] | None, key: str) -> None:
    st.header("1. Continuous relaxation")
    st.markdown(
        "Picking one op per edge is a discrete choice, so it cannot be learned by gradient descent. DARTS "
        "puts **all eight ops on every edge at once** and mixes their outputs with a softmax over "
        "architecture parameters $\\alpha$ (one vector of 8 per edge, a 14 x 8 matrix per cell type):")
    st.latex(r"\bar{o}^{(i,j)}(x) = \sum_{o \in \mathcal{O}} "
             r"\frac{\exp\big(\alpha_o^{(i,j)}\big)}"
             r"{\sum_{o' \in \mathcal{O}} \exp\big(\alpha_{o'}^{(i,j)}\big)}\, o(x)")
    st.markdown(
        "These mixing coefficients are the **op weights**; they are not the **network weights** (the "
        "convolution kernels inside each op), which are trained separately. The alphas start near zero, so "
        "every op weight starts at 1/8 = 0.125. The heatmaps show the op weights: one row per edge "
        "(`source -> node`), one column per op. Their colour scales are fixed, so a colour means the same "
        "value in both cells and at every step.")
    if weights:
        mode = cells.mode_picker(key=f"{key}.mode")
        cells.render_heatmaps(weights, None, mode, key=key)
    else:
        st.info("Start a search (Search page) or pick a recorded run above to see its op weights here.")


def _bilevel() -> None:
    st.header("2. Bilevel optimisation")
    st.markdown(
        "Two sets of parameters are learned: the **network weights** $w$ (convolution kernels) and the "
        "architecture $\\alpha$ (which sets the op weights). The network weights should fit the training data; "
        "the architecture should be the one whose trained network weights do best on held-out data. The "
        "training set is split in two halves for this:")
    st.latex(r"\min_{\alpha}\; \mathcal{L}_{val}\big(w^*(\alpha), \alpha\big) \quad \text{s.t.} \quad "
             r"w^*(\alpha) = \arg\min_{w}\; \mathcal{L}_{train}(w, \alpha)")
    st.markdown(
        "Training $w$ to convergence for every change of $\\alpha$ is far too expensive, so DARTS alternates "
        "one step of each: an **architecture step** on a validation batch (Adam on $\\alpha$), then a "
        "**network-weight step** on a training batch (SGD on $w$). The *second-order* variant looks one "
        "virtual SGD step ahead, to the network weights $w'$ that the next step would give:")
    st.latex(r"\nabla_\alpha \mathcal{L}_{val}\big(w', \alpha\big) - \xi\, \nabla^2_{\alpha, w}"
             r"\mathcal{L}_{train}(w, \alpha)\, \nabla_{w'} \mathcal{L}_{val}(w', \alpha), \qquad "
             r"w' = w - \xi \nabla_w \mathcal{L}_{train}(w, \alpha)")
    st.markdown(
        "Here $\\xi$ is the **learning rate of that virtual step**: this app, like the paper's code, uses the "
        "network weights' current learning rate (and the virtual step includes SGD's momentum and weight "
        "decay). The **first-order** variant is the case $\\xi = 0$: $w' = w$, the second term vanishes and "
        "the gradient is just $\\nabla_\\alpha \\mathcal{L}_{val}(w, \\alpha)$ at the current network weights; "
        "it is cheaper and, in the paper, finds a somewhat worse cell. The second-derivative term is "
        "approximated by a finite difference with $w^\\pm = w \\pm \\epsilon \\nabla_{w'} "
        "\\mathcal{L}_{val}(w', \\alpha)$, where $\\epsilon$ is the **finite-difference radius**, a small step "
        "(the paper's $\\epsilon = 0.01 / \\lVert \\nabla_{w'} \\mathcal{L}_{val}(w', \\alpha) \\rVert_2$, as here):")
    st.latex(r"\nabla^2_{\alpha, w}\mathcal{L}_{train}\, \nabla_{w'}\mathcal{L}_{val} \approx "
             r"\frac{\nabla_\alpha \mathcal{L}_{train}(w^+, \alpha) - \nabla_\alpha \mathcal{L}_{train}(w^-, \alpha)}"
             r"{2\epsilon}")


def _derivation(weights: Mapping[str, Any] | None, genotype: Genotype | None, valid_acc: float | None) -> None:
    st.header("3. From op weights to a cell: the derivation rule")
    st.markdown(
        "When the search ends (or whenever you press **Derive now**), the mixture is turned back into a "
        "discrete cell, the **genotype**:\n"
        "1. for each node, rank its incoming edges by their **largest non-`none` op weight** and keep "
        "the **top 2**;\n"
        "2. on each kept edge, keep the **strongest op other than `none`**.\n\n"
        "**Why `none` can dominate an edge and still never appear in the cell.** `none` is the zero op: it "
        "outputs zeros, so a large op weight on `none` only scales the edge down. That op weight measures how little "
        "the edge matters, not an op to keep, and the rule leaves it out: an edge whose `none` is largest "
        "still gives its best real op, and the edges are ranked by their real ops only.\n\n"
        f"Ranking must use the op weights (softmax), not the raw alphas: two edges with the same raw alpha for "
        f"an op can give it very different op weights. {RAW_ALPHA_FIGURE} Below, the cells derived from the op "
        "weights above; switch on *every candidate edge* to see the relaxed cell they come from.")
    acc = "" if valid_acc is None else f" (this run's supernet: {valid_acc:.2f})"
    st.markdown(
        "**The derived cell is not yet a result.** It is stacked into a new, deeper network (20 cells, 36 "
        "channels for CIFAR-10) that is **trained again from scratch**; that network's test accuracy is the "
        f"result. The validation accuracy of the search's supernet{acc} is the accuracy of a mixture of all "
        "ops with shared network weights, and says little about the derived cell (Train page, or "
        "`python -m engine train`).")
    if genotype is None:
        st.info("No run to derive from yet.")
        return
    show_all = st.toggle("Show every candidate edge", key="learn.show_all")
    cells.render_dags(genotype, weights, show_all)
    st.code(genotype.to_darts(), language="python", wrap_lines=True)


def _collapse(records: Sequence[Mapping[str, Any]], key: str, variant: str | Mapping[str, Any]) -> None:
    st.header("4. Skip-connection collapse")
    st.markdown(
        "A weakness of DARTS that users meet again and again: as the search goes on, **parameter-free ops**, "
        "above all **`skip_connect`** (and the pools), gain op weight, because they let gradients through "
        "easily and the supernet's network weights train faster with them, not because they make the best "
        "final network. Searched long enough, the normal cell fills with skip connections and the network "
        "built from it is shallow and weak. Variants fight this (DARTS-, P-DARTS, beta-DARTS...); in plain "
        "DARTS, watch the thick red **skip_connect** line below (other parameter-free ops dotted) and stop, or "
        "prefer an earlier epoch's genotype, before it takes over. The charts leave `none` out: it is never "
        "chosen, and each line is the op's share of its edge's op weight among the real ops, the competition "
        "the derivation rule decides.")
    _collapse_lesson()
    if len(records) < 2:
        st.info("This needs a run with at least two recorded steps.")
        return
    places = [st.container() for _ in range(2)] if cells.lecture_on() else list(st.columns(2))
    for place, cell in zip(places, ("normal", "reduce"), strict=True):
        place.plotly_chart(figures.op_share_figure(records, cell, variant), key=f"{key}.share.{cell}")
    last = figures.record_genotype(records[-1], variant)
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
        return figures.normal_cell_counts(self.metrics)

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
        genotype = figures.record_genotype(records[-1], dict(info.config or {}))
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
            st.markdown(
                "Three searches that differ only in their variant: the `collapse` preset, which is the demo's "
                "network and data (Fashion-MNIST at 16x16, C=8, 5 cells, seed 2) searched for 20 epochs, 500 "
                "steps. `python -m engine search --preset collapse --set variant=darts_minus` runs one in about "
                "15 minutes on a 2-core CPU; a fresh run of plain DARTS takes its own path (collapse is likely on "
                "this preset, not certain: docs/collapse.md), which is why these are recordings. The curves count, "
                "in the normal cell "
                "derived at each step, the skip connections and all parameter-free ops (skip, max and avg pooling) "
                "among its 8 kept ops.")
            lecture = cells.lecture_on()
            by_label = {r.label: r.metrics for r in runs}
            places = [st.container() for _ in range(2)] if lecture else list(st.columns(2))
            for place, count in zip(places, ("skips", "param_free"), strict=True):
                place.plotly_chart(figures.collapse_counts_figure(by_label, count, lecture=lecture,
                                                                  settled=LESSON_SETTLED),
                                   key=f"learn.collapse_lesson.{count}")
            st.markdown("\n".join(f"- {r.summary()}" for r in runs))
            st.markdown(
                "Plain DARTS collapses: from the second half of the search on, skip connections and pools take "
                "over its normal cell, while its supernet's validation accuracy keeps rising, so that accuracy "
                "gives no warning. DARTS- gives every edge an auxiliary skip, scaled by a beta that decays from 1 "
                "to 0, so the skip op need not win an edge to carry the gradient: its cell keeps convolutions until "
                "that beta is almost 0, near the end. beta-DARTS pulls each edge's alphas down in proportion to "
                "their op weights, so no op runs away with its edge: its cell keeps convolutions to the end. "
                f"(In the first {LESSON_SETTLED} or so steps, shaded, the alphas are still close to uniform and the "
                "cell flips between ops almost at random: the blips there are noise, not collapse.) The normal cells "
                "each run derived at its last step:")
            columns = [st.container() for _ in runs] if lecture else list(st.columns(len(runs)))
            for place, run in zip(columns, runs, strict=True):
                with place:
                    st.markdown(f"**{run.label}**")
                    st.graphviz_chart(figures.cell_dot(run.genotype, cell="normal", lecture=lecture), width="stretch")
                    final = count_ops(run.genotype, "normal")
                    st.caption(f"{final['skips']} skip connection(s), {final['param_free']} parameter-free of "
                               f"{len(run.genotype.normal)} · {run.info.run_id}")
                    if st.button("Replay it", key=f"learn.collapse_lesson.replay.{run.info.run_id}",
                                 help="step through this recording on the Replay page"):
                        st.session_state["replay.run"] = run.info.run_id
                        nav.switch_to("replay")
        if st.button("Close the lesson", key="learn.collapse_lesson.close"):
            st.session_state[LESSON_KEY] = False
            st.rerun()


def _paper(genotype: Genotype | None, num_classes: int) -> None:
    st.header("5. The paper's cell")
    paper = KNOWN_GENOTYPES[_PAPER]
    st.markdown(
        "DARTS_V2 is the cell of the paper's second-order search on CIFAR-10 (4 GPU-days). Built as a "
        "20-cell network with 36 initial channels it has 3.3M parameters and reaches 2.76 ± 0.09 % test "
        "error on CIFAR-10. Its normal cell is mostly separable convolutions; the reduction cell is "
        "mostly max pooling.")
    left, right = st.columns(2)
    with left:
        st.markdown(f"**{_PAPER}**")
        for cell, title in cells.CELLS.items():
            st.caption(title)
            st.graphviz_chart(figures.cell_dot(paper, cell=cell, lecture=cells.lecture_on()), width="stretch")
        st.metric("Parameters (C=36, 20 cells, 10 classes)",
                  f"{state.param_count(json.dumps(paper.to_dict(), sort_keys=True), 10):,}")
    with right:
        st.markdown("**This run**")
        if genotype is None:
            st.info("No run to compare with yet.")
            return
        for cell, title in cells.CELLS.items():
            st.caption(title)
            st.graphviz_chart(figures.cell_dot(genotype, cell=cell, lecture=cells.lecture_on()),
                              width="stretch")
        st.metric(f"Parameters (C=36, 20 cells, {num_classes} classes)",
                  f"{state.param_count(json.dumps(genotype.to_dict(), sort_keys=True), num_classes):,}")
    st.dataframe(figures.compare_genotypes_frame(paper, genotype, names=(_PAPER, "this run")), hide_index=True,
                 width="stretch")


# One paragraph per variant (docs/variants.md has the details and where the official code differs from the paper).
VARIANT_LESSONS = {
    "pc_darts": ("PC-DARTS: partial channels", "Each edge sends only 1/K of its channels (K=4) through the eight "
                 "ops; the rest skip them and are shuffled back in. That cuts the supernet's memory about K-fold, so "
                 "batches can be larger. Sampling channels makes the op choice noisier, so each edge also gets an "
                 "**edge weight** (a softmax over the node's inputs) and the genotype ranks edges by op weight "
                 "times edge weight. The alphas are frozen for the first 15 epochs while the network weights warm up."),
    "gdas": ("GDAS: one op per edge", "Instead of running all eight ops, each edge samples **one** op per step "
             "from softmax(alpha) with the Gumbel-max trick and runs only it, so a step costs about an eighth. "
             "The gradient for the alphas comes from the soft Gumbel-softmax (straight-through), whose temperature "
             "tau anneals from 10 to 0.1: the heatmap shows the sampling probabilities at the current tau."),
    "fair_darts": ("FairDARTS: independent op weights", "Softmax makes ops compete, and skip connections win that "
                   "competition unfairly. FairDARTS gives each op its own sigmoid weight in (0, 1), adds a "
                   "**zero-one loss** that pushes every op weight towards 0 or 1, and keeps an edge only if its best "
                   "op passes 0.85: a node may keep two, one or no inputs."),
    "drnas": ("DrNAS: a distribution over cells", "The op weights of each edge are a **sample from a Dirichlet "
              "distribution** whose concentration (ELU(alpha) + 1) is learned, drawn anew every step with a "
              "reparameterised sampler. The noise explores and regularises; the heatmap shows the mean, and the "
              "spread shrinks as the concentration grows."),
    "darts_minus": ("DARTS-: an auxiliary skip on every edge", "Skip connections win partly because they carry "
                    "the gradient, not because they are good ops. DARTS- adds a separate skip beside the ops of every "
                    "edge, weighted by beta, which decays from 1 to 0 over the search: the skip op no longer needs to "
                    "win the edge to keep the gradient flowing, and at the end the supernet is plain DARTS again."),
    "beta_darts": ("beta-DARTS: keep the alphas small", "A **Beta-Decay** loss adds lambda times the mean "
                   "logsumexp of each edge's alphas to the architecture loss, with lambda growing over the search. "
                   "It keeps the alphas from running away, so the op weights stay comparable and no op saturates "
                   "its edge early; it can regularise PC-DARTS as well."),
    "sdarts_rs": ("SDARTS-RS: train around the architecture", "In the network-weight step the op weights get "
                  "uniform noise in [-epsilon, epsilon] (the architecture step sees none), so the network weights "
                  "learn to do well for architectures near the current one. The validation loss becomes smoother "
                  "in alpha, the Hessian's top eigenvalue stays lower, and the cell collapses less."),
}


def _variants(variant: str) -> None:
    st.header("6. Variants of DARTS")
    st.markdown("Four variants change how the alphas become op weights, or what runs in a step; three more "
                "regularise DARTS against collapse (section 4). Pick one in the sidebar: `variant`.")
    for name, (title, text) in VARIANT_LESSONS.items():
        with st.expander(title + (" (this run)" if name == variant else ""), expanded=name == variant):
            st.markdown(text)


def render(records: Sequence[Mapping[str, Any]], num_classes: int = 10, key: str = "learn",
           variant: str | Mapping[str, Any] = "darts", valid_acc: float | None = None) -> None:
    """The lesson on one run's recorded alphas (empty: the lesson with the paper's cell only); `variant` is
    the run's (its name, or its config: then its options and skip cap too), which turns the records into op
    weights and a cell."""
    name = variant if isinstance(variant, str) else str(variant.get("variant", "darts"))
    weights = figures.record_weights(records[-1], variant) if records else None
    genotype = figures.record_genotype(records[-1], variant) if records else None
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
    runs = [r for r in catalog.list_runs(reg.runs_dir) if r.kind != "train"] + examples.example_runs()
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
        st.caption(f"{info.state} · {figures.progress_text(info.epoch, info.epochs, info.step, info.total_steps)}"
                   " · this page redraws when you interact with it; the Search page is the live view")
    else:
        st.caption("No runs yet: the figures below appear once a search has run (Search page).")
    render(records, classes, variant=variant, valid_acc=valid_acc)
