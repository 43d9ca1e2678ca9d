"""The Learn page: DARTS for someone new to neural architecture search, told with this app's own figures
on a live or recorded run, and set beside the paper's DARTS_V2 cell."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import streamlit as st

from app import figures, state
from app.views import cells
from engine import catalog, examples
from engine.genotype import KNOWN_GENOTYPES, Genotype
from engine.space import PRIMITIVES

__all__ = ["page", "render"]

_PAPER = "DARTS_V2"


def _intro() -> None:
    st.markdown(
        "**Neural architecture search** looks for the wiring of a network instead of hand-designing it. "
        "DARTS (Liu, Simonyan and Yang, ICLR 2019) searches for one small building block, a **cell**, "
        "and stacks copies of it into a network. A cell is a little graph: two inputs (the outputs of "
        "the two previous cells, `c_{k-2}` and `c_{k-1}`), four intermediate **nodes**, and an output "
        "that concatenates the nodes. Node *i* may take any earlier state as input, which gives "
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
        "The alphas start near zero, so every weight starts at 1/8 = 0.125. The heatmaps show these softmax "
        "weights: one row per edge (`source -> node`), one column per op.")
    if weights:
        mode = cells.mode_picker(key=f"{key}.mode")
        cells.render_heatmaps(weights, None, mode, key=key)
    else:
        st.info("Start a search (Search page) or pick a recorded run above to see its weights here.")


def _bilevel() -> None:
    st.header("2. Bilevel optimisation")
    st.markdown(
        "Two sets of parameters are learned: the network weights $w$ (convolution kernels) and the "
        "architecture $\\alpha$. The weights should fit the training data; the architecture should be the "
        "one whose trained weights do best on held-out data. The training set is split in two halves for this:")
    st.latex(r"\min_{\alpha}\; \mathcal{L}_{val}\big(w^*(\alpha), \alpha\big) \quad \text{s.t.} \quad "
             r"w^*(\alpha) = \arg\min_{w}\; \mathcal{L}_{train}(w, \alpha)")
    st.markdown(
        "Training $w$ to convergence for every change of $\\alpha$ is far too expensive, so DARTS alternates "
        "one step of each: an **architecture step** on a validation batch (Adam on $\\alpha$), then a "
        "**weight step** on a training batch (SGD on $w$). The *first-order* variant uses the gradient at "
        "the current weights, $\\nabla_\\alpha \\mathcal{L}_{val}(w, \\alpha)$. The *second-order* variant looks "
        "one SGD step ahead:")
    st.latex(r"\nabla_\alpha \mathcal{L}_{val}\big(w', \alpha\big) - \xi\, \nabla^2_{\alpha, w}"
             r"\mathcal{L}_{train}(w, \alpha)\, \nabla_{w'} \mathcal{L}_{val}(w', \alpha), \qquad "
             r"w' = w - \xi \nabla_w \mathcal{L}_{train}(w, \alpha)")
    st.markdown("and approximates the second-derivative term by a finite difference, with "
                "$w^\\pm = w \\pm \\epsilon \\nabla_{w'} \\mathcal{L}_{val}(w', \\alpha)$:")
    st.latex(r"\nabla^2_{\alpha, w}\mathcal{L}_{train}\, \nabla_{w'}\mathcal{L}_{val} \approx "
             r"\frac{\nabla_\alpha \mathcal{L}_{train}(w^+, \alpha) - \nabla_\alpha \mathcal{L}_{train}(w^-, \alpha)}"
             r"{2\epsilon}")


def _derivation(weights: Mapping[str, Any] | None, genotype: Genotype | None) -> None:
    st.header("3. From weights to a cell: the derivation rule")
    st.markdown(
        "When the search ends (or whenever you press **Derive now**), the mixture is turned back into a "
        "discrete cell, the **genotype**:\n"
        "1. for each node, rank its incoming edges by their **largest non-`none` softmax weight** and keep "
        "the **top 2**;\n"
        "2. on each kept edge, keep the **strongest op other than `none`**.\n\n"
        "Ranking must use the softmax weights, not the raw alphas: ranking by raw alphas is a known bug of "
        "some ports and gives a different cell most of the time. Below, the cells derived from the weights "
        "above; switch on *every candidate edge* to see the relaxed cell they come from.")
    if genotype is None:
        st.info("No run to derive from yet.")
        return
    show_all = st.toggle("Show every candidate edge", key="learn.show_all")
    cells.render_dags(genotype, weights, show_all)
    st.code(genotype.to_darts(), language="python", wrap_lines=True)


def _collapse(records: Sequence[Mapping[str, Any]], key: str, variant: str) -> None:
    st.header("4. Skip-connection collapse")
    st.markdown(
        "A weakness of DARTS that users meet again and again: as the search goes on, **parameter-free ops** "
        "(`skip_connect`, the pools) gain weight, because they let gradients through easily and the "
        "supernet's weights train faster with them, not because they make the best final network. Searched "
        "long enough, the normal cell fills with skip connections and the network built from it is "
        "shallow and weak. Variants fight this (DARTS-, P-DARTS, beta-DARTS...); in plain DARTS, watch the "
        "dotted lines below (parameter-free ops) and stop, or prefer an earlier epoch's genotype, before "
        "they take over.")
    if len(records) < 2:
        st.info("This needs a run with at least two recorded steps.")
        return
    left, right = st.columns(2)
    for col, cell in ((left, "normal"), (right, "reduce")):
        col.plotly_chart(figures.op_share_figure(records, cell, variant), key=f"{key}.share.{cell}")
    last = figures.record_genotype(records[-1], variant)
    skips = sum(op == "skip_connect" for op, _ in last.normal)
    st.caption(f"The normal cell derived at the last recorded step has {skips} skip connection(s) out of "
               f"{len(last.normal)} edges (the paper's DARTS_V2 normal cell has 2).")


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
            st.graphviz_chart(figures.cell_dot(paper, cell=cell), width="stretch")
        st.metric("Parameters (C=36, 20 cells, 10 classes)",
                  f"{state.param_count(json.dumps(paper.to_dict(), sort_keys=True), 10):,}")
    with right:
        st.markdown("**This run**")
        if genotype is None:
            st.info("No run to compare with yet.")
            return
        for cell, title in cells.CELLS.items():
            st.caption(title)
            st.graphviz_chart(figures.cell_dot(genotype, cell=cell), width="stretch")
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
                 "times edge weight. The alphas are frozen for the first 15 epochs while the weights warm up."),
    "gdas": ("GDAS: one op per edge", "Instead of running all eight ops, each edge samples **one** op per step "
             "from softmax(alpha) with the Gumbel-max trick and runs only it, so a step costs about an eighth. "
             "The gradient for the alphas comes from the soft Gumbel-softmax (straight-through), whose temperature "
             "tau anneals from 10 to 0.1: the heatmap shows the sampling probabilities at the current tau."),
    "fair_darts": ("FairDARTS: independent weights", "Softmax makes ops compete, and skip connections win that "
                   "competition unfairly. FairDARTS gives each op its own sigmoid weight in (0, 1), adds a "
                   "**zero-one loss** that pushes every weight towards 0 or 1, and keeps an edge only if its best "
                   "op passes 0.85: a node may keep two, one or no inputs."),
    "drnas": ("DrNAS: a distribution over cells", "The op weights of each edge are a **sample from a Dirichlet "
              "distribution** whose concentration (ELU(alpha) + 1) is learned, drawn anew every step with a "
              "reparameterised sampler. The noise explores and regularises; the heatmap shows the mean, and the "
              "spread shrinks as the concentration grows."),
}


def _variants(variant: str) -> None:
    st.header("6. Variants of DARTS")
    st.markdown("Four variants change how the alphas become op weights, or what runs in a step "
                "(pick one in the sidebar: `variant`).")
    for name, (title, text) in VARIANT_LESSONS.items():
        with st.expander(title + (" (this run)" if name == variant else ""), expanded=name == variant):
            st.markdown(text)


def render(records: Sequence[Mapping[str, Any]], num_classes: int = 10, key: str = "learn",
           variant: str = "darts") -> None:
    """The lesson on one run's recorded alphas (empty: the lesson with the paper's cell only); `variant` is
    the run's, which turns the records into op weights and a cell."""
    weights = figures.record_weights(records[-1], variant) if records else None
    genotype = figures.record_genotype(records[-1], variant) if records else None
    _intro()
    _relaxation(weights, key)
    _bilevel()
    _derivation(weights, genotype)
    _collapse(records, key, variant)
    _paper(genotype, num_classes)
    _variants(variant)


def page() -> None:
    reg = state.registry()
    st.title("Learn DARTS")
    # this machine's searches, then the recordings shipped with the app, so the lesson has a real run at once
    runs = [r for r in catalog.list_runs(reg.runs_dir) if r.kind != "train"] + examples.example_runs()
    records: list[dict[str, Any]] = []
    classes, variant = 10, "darts"
    if runs:
        ids = [r.run_id for r in runs]
        job = state.selected_job(reg)
        index = ids.index(job.run_id) if job is not None and job.run_id in ids else 0
        run_id = st.selectbox("Run to learn from", ids, index=index, key="learn.run",
                              help="the live search, or any recorded run; figures show its latest step")
        info = next(r for r in runs if r.run_id == run_id)
        records = state.alphas_records(info.path)
        classes = state.num_classes_of(info.config)
        variant = str(info.config.get("variant", "darts"))
        st.caption(f"{info.state} · {figures.progress_text(info.epoch, info.epochs, info.step, info.total_steps)}"
                   " · this page redraws when you interact with it; the Search page is the live view")
    else:
        st.caption("No runs yet: the figures below appear once a search has run (Search page).")
    render(records, classes, variant=variant)
