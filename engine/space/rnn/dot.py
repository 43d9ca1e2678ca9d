"""DOT source of a recurrent cell, torch-free: x_t and h_{t-1} into s_0, one edge per intermediate node labelled
with its op, and the average of the `concat` states as h_t. States carry the genotype's numbers (s_0 is 0), the
numbering of the paper's Figure 6."""

from __future__ import annotations

from engine.space.rnn.genotype import Genotype

__all__ = ["genotype_dot"]


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def genotype_dot(genotype: Genotype) -> str:
    lines = ["digraph recurrent {", "rankdir=LR;", 'node [style=filled, shape=rect, fontname="Helvetica"];',
             'edge [fontname="Helvetica", fontsize=11];',
             '"x_t" [fillcolor=darkseagreen2];', '"h_{t-1}" [fillcolor=darkseagreen2];',
             '"0" [fillcolor=lightblue];', '"x_t" -> "0";', '"h_{t-1}" -> "0";']
    for k, (op, j) in enumerate(genotype.recurrent):
        lines += [f'"{k + 1}" [fillcolor=lightblue];', f'"{j}" -> "{k + 1}" [label={_q(op)}];']
    lines.append('"h_t" [fillcolor=palegoldenrod];')
    lines += [f'"{c}" -> "h_t" [style=dashed];' for c in genotype.concat]
    return "\n".join([*lines, "}"]) + "\n"
