"""The Search page's technical words in plain language: each box's help text and the page's "Words on this page"
list read them from here, so a term is explained once and the same way everywhere (tests/test_stage.py checks
that every term the page shows has an entry)."""

from __future__ import annotations

__all__ = ["TERMS", "explain", "FIELD_TERMS"]

TERMS: dict[str, str] = {
    "Hessian eigenvalue": (
        "How sharply the validation loss curves around the current architecture: the largest eigenvalue of its "
        "second derivatives with respect to the alphas. A large, rising value means a tiny change of the "
        "architecture changes the loss a lot, and RobustDARTS found it rises just before DARTS collapses into "
        "skip connections. Measuring it costs about as much as 10-15 search steps, so it is off unless asked."),
    "Early stop (RobustDARTS)": (
        "Stop the search when the Hessian eigenvalue starts climbing fast (its local average up by more than "
        "1.3x within 4 measurements) and keep the cell from before the climb. It needs the eigenvalue, so "
        "it only works with 'Hessian eigenvalue every' above 0."),
    "Cost penalty weight": (
        "How much the search is pushed towards cheap cells: this number times the cells' expected size (in "
        "millions of parameters or mult-adds) is added to the loss the alphas learn from. 0 = no push."),
    "Mult-adds": (
        "Multiply-add operations one image needs to pass through the cells: a measure of compute time, where "
        "parameters measure memory."),
    "Entropy (nats)": (
        "How undecided an edge still is, averaged over the edges. Entropy is measured in nats (natural "
        "logarithm): ln 8 = 2.08 when the 8 ops weigh the same, 0 when one op has all the weight. It falls as "
        "the search makes up its mind."),
    "K (partial channels)": (
        "PC-DARTS sends only 1/K of each edge's channels through the candidate ops (the rest skip past them), "
        "so a step needs about K times less memory for the mixed ops. K = 4 in the paper; Channels (C) must "
        "be a multiple of K."),
    "Adam betas": (
        "The two averaging rates of the Adam optimiser that trains the alphas: how much of the past gradient "
        "(first number) and of its past size (second number) each step keeps. DARTS uses 0.5 and 0.999."),
    "Supernet accuracy": (
        "The validation accuracy of the search network, where every edge mixes all ops. It is not the accuracy "
        "of the derived cell, which is trained again from scratch (Train page); runs of different lengths "
        "are not comparable on it."),
}

# Sidebar field -> the term its help explains.
FIELD_TERMS = {"hessian_every": "Hessian eigenvalue", "early_stop": "Early stop (RobustDARTS)",
               "cost_weight": "Cost penalty weight", "cost_kind": "Mult-adds", "pc_k": "K (partial channels)",
               "a_betas": "Adam betas"}


def explain(term: str) -> str:
    return TERMS[term]
