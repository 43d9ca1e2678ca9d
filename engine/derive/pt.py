"""Perturbation-based derivation (DARTS-PT: Wang et al., "Rethinking Architecture Selection in Differentiable NAS",
ICLR 2021; reference code github.com/ruocwang/darts-pt, sota/cnn/projection.py).

The alpha-argmax rule keeps, on each edge, the op with the largest op weight. PT keeps the op the supernet needs
most: on each edge (in a seeded random order) it measures the supernet's validation accuracy with each op's
weight set to zero, and keeps the op whose removal hurts most; the edge's row then becomes that op's one-hot.
After all the edges, each node with more than two inputs drops, one at a time, the input edge whose removal
hurts least until two remain. Between two rounds of decisions the supernet's weights are fine-tuned (the
alphas stay as the search left them), so that it recovers from the projections made so far.

As in the reference, a round decides one edge (or node) of the normal cell and one of the reduction cell,
accuracy is measured in training mode (BatchNorm on the batch's statistics; here its running statistics are
left untouched), a removed op's weight is zeroed without renormalising the others, and the fine-tuning is SGD
at a tenth of the search's weight learning rate. What differs, and why, is in docs/derivation.md.

Its files, beside the search's and never one of them (the search's own files are only read):

    pt.jsonl       one row a decision, appended after each round (docs/derivation.md has the format)
    pt_state.pt    the supernet and optimiser after the last finished round, with its rows: a killed PT resumes
                   from it and, every step being seeded, ends with the same cell
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from engine.core.atomic import append_jsonl, read_jsonl, write_bytes_atomic
from engine.derive.rows import ROWS, genotype_of_rows
from engine.runs import rundir
from engine.runs.checkpoint import CheckpointError, load_checkpoint, load_states
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, edge_endpoints
from engine.space.cnn.genotype import Genotype

__all__ = ["PTOptions", "PTError", "PTResult", "ROWS", "STATE", "run_pt", "edge_order", "plan", "forward_with",
           "evaluate", "fine_tune", "describe", "genotype_of_rows"]

STATE = "pt_state.pt"
STATE_FORMAT = "dartboard-pt-state/1"
# Defaults sized for a CPU (docs/derivation.md has what a demo search's PT took with them). The paper tunes
# 5 epochs between decisions on a GPU; here a round's budget is a number of weight steps.
DEFAULT_TUNE_STEPS = 10
MAX_EVAL_BATCHES = 4
_TUNE_STREAM = 10_000  # the fine-tuning's epochs of the weight half: far past any search's own epochs


class PTError(ValueError):
    """PT cannot run on this input; the message says why in one line (the command line exits 2)."""


@dataclass(frozen=True)
class PTOptions:
    tune_steps: int = DEFAULT_TUNE_STEPS  # weight steps of fine-tuning after each round but the last
    eval_batches: int | None = None       # validation batches a measurement reads (None: all, at most 4)
    seed: int = 0                         # the edge and node order

    @classmethod
    def of(cls, tune_steps: int | None = None, eval_batches: int | None = None, seed: int = 0) -> PTOptions:
        """Checked options (None: the default); a PTError naming the bad one."""
        tune = DEFAULT_TUNE_STEPS if tune_steps is None else tune_steps
        if type(tune) is not int or tune < 1:
            raise PTError(f"--tune-steps must be an integer >= 1 (weight steps between two decisions), not {tune!r}")
        if eval_batches is not None and (type(eval_batches) is not int or eval_batches < 1):
            raise PTError(f"--eval-batches must be an integer >= 1, not {eval_batches!r}")
        if type(seed) is not int or not 0 <= seed < 2**32:
            raise PTError(f"--seed must be an integer from 0 to 2**32-1, not {seed!r}")
        return cls(tune, eval_batches, seed)


@dataclass(frozen=True)
class PTResult:
    genotype: Genotype
    rows: list[dict[str, Any]]
    resumed_from: int  # rounds already done when this call started


# ---- the plan: which decisions, in which order -------------------------------------------------------------

def edge_order(nodes: int, seed: int) -> dict[str, list[int]]:
    """Per cell kind, the edges (rows of the alpha order) in the order PT decides their ops: a seeded permutation,
    drawn for each kind from its own stream."""
    n = len(edge_endpoints(nodes))
    return {kind: [int(e) for e in np.random.default_rng([seed, 1, k]).permutation(n)]
            for k, kind in enumerate(CELL_KINDS)}


def _node_order(nodes: int, seed: int) -> dict[str, list[int]]:
    """Per cell kind, the nodes with more than two inputs (node i has i + 2) in the order their edges are pruned."""
    choosable = [i for i in range(nodes) if i + 2 > 2]
    return {kind: [choosable[int(j)] for j in np.random.default_rng([seed, 2, k]).permutation(len(choosable))]
            for k, kind in enumerate(CELL_KINDS)}


def plan(nodes: int, seed: int) -> list[list[tuple[str, str, int]]]:
    """The rounds: first one ("op", kind, edge) per cell kind for every edge, then one ("node", kind, node) per
    kind for every node with more than two inputs. Fine-tuning follows every round but the last."""
    edges, node_order = edge_order(nodes, seed), _node_order(nodes, seed)
    rounds = [[("op", kind, edges[kind][t]) for kind in CELL_KINDS] for t in range(len(edges["normal"]))]
    rounds += [[("node", kind, node_order[kind][t]) for kind in CELL_KINDS] for t in range(len(node_order["normal"]))]
    return rounds


# ---- the supernet with given op weights ---------------------------------------------------------------------

def forward_with(net: Any, x: torch.Tensor, weights: dict[str, torch.Tensor]) -> torch.Tensor:
    """The supernet's logits with these op weights ((edges, ops) per cell kind) in place of the variant's.
    SearchNetwork.forward, less what the variants PT refuses add (edge weights, sampled ops, an auxiliary skip)."""
    s0 = s1 = net.stem(net.prepare_input(x))
    for cell in net.cells:
        s0, s1 = s1, cell(s0, s1, weights["reduce" if cell.reduction else "normal"])
    return net.classifier(net.global_pooling(s1).flatten(1))


def evaluate(net: Any, batches: list[tuple[torch.Tensor, torch.Tensor]],
             weights: dict[str, torch.Tensor]) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) over the batches, in training mode as the reference measures (BatchNorm on
    each batch's statistics), the running statistics kept as they were."""
    from engine.nn.supernet import buffers_kept

    net.train()
    correct, loss, n = 0, 0.0, 0
    with torch.no_grad(), buffers_kept(net):
        for x, y in batches:
            logits = forward_with(net, x, weights)
            correct += int((logits.argmax(1) == y).sum())
            loss += float(F.cross_entropy(logits, y, reduction="sum"))
            n += len(y)
    return correct / n, loss / n


def fine_tune(net: Any, optimizer: torch.optim.Optimizer, batches: Iterator[tuple[torch.Tensor, torch.Tensor]],
              weights: dict[str, torch.Tensor], steps: int, grad_clip: float) -> float:
    """`steps` weight steps on the projected supernet; the alphas are not in the optimiser and get no gradient.
    Returns the mean training loss."""
    net.train()
    arch = net.arch_parameters()
    for p in arch:
        p.requires_grad_(False)  # no gradient is computed for them at all, so nothing can move them
    total = 0.0
    try:
        for _ in range(steps):
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(forward_with(net, x, weights), y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.weight_parameters(), grad_clip)
            optimizer.step()
            total += loss.item()
    finally:
        for p in arch:
            p.requires_grad_(True)
    return total / steps


# ---- the projection state ------------------------------------------------------------------------------------

class _Projection:
    """The op weights with the decisions so far applied: a decided edge is its op's one-hot, a pruned edge zero."""

    def __init__(self, base: dict[str, np.ndarray], nodes: int):
        self.base = {k: torch.tensor(np.asarray(base[k]), dtype=torch.float32) for k in CELL_KINDS}
        self.nodes = nodes
        self.endpoints = edge_endpoints(nodes)  # row -> (input, node)
        self.op: dict[str, dict[int, int]] = {k: {} for k in CELL_KINDS}       # edge -> op index
        self.pruned: dict[str, set[int]] = {k: set() for k in CELL_KINDS}

    def apply(self, row: dict[str, Any]) -> None:
        if row["kind"] == "op":
            self.op[row["cell"]][row["edge"]] = PRIMITIVES.index(row["chosen"])
        else:
            self.pruned[row["cell"]].update(r["edge"] for r in row["removed"])

    def weights(self) -> dict[str, torch.Tensor]:
        out = {}
        for kind in CELL_KINDS:
            w = self.base[kind].clone()
            for e, o in self.op[kind].items():
                w[e] = 0.0
                w[e, o] = 1.0
            for e in self.pruned[kind]:
                w[e] = 0.0
            out[kind] = w
        return out

    def node_edges(self, kind: str, node: int) -> list[int]:
        return [e for e, (_, i) in enumerate(self.endpoints) if i == node and e not in self.pruned[kind]]

    def genotype(self) -> Genotype:
        cells = {}
        for kind in CELL_KINDS:
            pairs = []
            for node in range(self.nodes):
                pairs += [(PRIMITIVES[self.op[kind][e]], self.endpoints[e][0]) for e in self.node_edges(kind, node)]
            cells[kind] = pairs
        concat = list(range(2, 2 + self.nodes))
        return Genotype(cells["normal"], concat, cells["reduce"], concat)


def _decide_op(net: Any, batches: list, proj: _Projection, kind: str, edge: int) -> dict[str, Any]:
    base = proj.weights()
    row_w = base[kind][edge]
    drops = {}
    for o, name in enumerate(PRIMITIVES):
        if name == "none":
            continue  # a genotype cannot hold it, and masking a zero output measures nothing
        w = {k: v.clone() for k, v in base.items()}
        w[kind][edge, o] = 0.0
        acc, loss = evaluate(net, batches, w)
        drops[name] = {"acc": acc, "loss": loss}
    # the op whose removal leaves the lowest accuracy; among equal accuracies, the highest loss
    chosen = min(drops, key=lambda n: (drops[n]["acc"], -drops[n]["loss"]))
    real = [o for o, n in enumerate(PRIMITIVES) if n != "none"]
    argmax = PRIMITIVES[max(real, key=lambda o: float(row_w[o]))]
    src, node = proj.endpoints[edge]
    return {"kind": "op", "cell": kind, "edge": edge, "input": src, "node": node, "chosen": chosen,
            "argmax": argmax, "weights": {n: round(float(row_w[o]), 6) for o, n in enumerate(PRIMITIVES)},
            "masked": drops}


def _decide_node(net: Any, batches: list, proj: _Projection, kind: str, node: int) -> dict[str, Any]:
    edges = proj.node_edges(kind, node)
    removed = []
    while len(edges) > 2:
        trials = {}
        for e in edges:
            w = proj.weights()
            for r in removed:
                w[kind][r["edge"]] = 0.0
            w[kind][e] = 0.0
            trials[e] = evaluate(net, batches, w)
        # the edge whose removal leaves the highest accuracy (lowest loss among equals) hurts least
        drop = max(edges, key=lambda e: (trials[e][0], -trials[e][1]))
        removed.append({"edge": drop, "input": proj.endpoints[drop][0], "acc": trials[drop][0],
                        "loss": trials[drop][1],
                        "trials": {str(e): {"acc": a, "loss": lo} for e, (a, lo) in trials.items()}})
        edges = [e for e in edges if e != drop]
    return {"kind": "node", "cell": kind, "node": node, "kept": [proj.endpoints[e][0] for e in edges],
            "kept_edges": edges, "removed": removed}


def describe(row: dict[str, Any]) -> str:
    """One line for a progress display."""
    if row["kind"] == "op":
        m = row["masked"][row["chosen"]]
        note = "" if row["chosen"] == row["argmax"] else f" (argmax: {row['argmax']})"
        return (f"{row['cell']} edge {row['edge']} ({row['input']}->node {row['node']}): keep {row['chosen']}"
                f"{note}; without it acc {m['acc']:.3f}")
    return f"{row['cell']} node {row['node']}: keep inputs {row['kept']}, drop {[r['input'] for r in row['removed']]}"


# ---- the run -------------------------------------------------------------------------------------------------

def _check_run(run_dir: Path) -> dict[str, Any]:
    from engine.runs.liveness import is_interrupted
    from engine.runs.snapshot import ACTIVE_STATES

    record = rundir.read_config(run_dir)  # RunDirError (one line) for a folder that is not a run
    if record.get("kind", "search") != "search":
        raise PTError(f"{run_dir} is a {record.get('kind')} run; PT derives a cell from a search's supernet")
    status = rundir.read_status(run_dir)
    if status.get("state") in ACTIVE_STATES and not is_interrupted(status):
        # refused rather than read mid-run: its checkpoint moves on every epoch, and PT's would no longer match
        raise PTError(f"{run_dir.name} is still {status['state']}; stop it (or let it finish), then derive with PT "
                      "from its last checkpoint")
    if not (run_dir / rundir.CHECKPOINT).exists():
        raise PTError(f"{run_dir} has no checkpoint.pt (a recording or a run stopped before its first checkpoint); "
                      "PT needs the supernet's weights")
    return record


def _data_and_net(ckpt: dict[str, Any]) -> tuple[Any, Any, Any]:
    from engine.search.build import build_network
    from engine.search.config import SearchConfig
    from engine.search.data import load_search_data
    from engine.variants import make_variant

    try:
        config = SearchConfig.from_dict(ckpt["config"]).replace(device="cpu", amp=False)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"the checkpoint's config does not load ({e})"[:300]) from None
    v = make_variant(config.variant)
    if v.partial_channels or v.samples_one_op or v.aux_skip:
        raise PTError(f"PT masks one op of a mixed edge; the {config.variant} supernet mixes its edges otherwise "
                      "(partial channels, a sampled op or an auxiliary skip): use the argmax derivation")
    data = load_search_data(config)
    net = build_network(config, data.in_channels, data.num_classes)
    load_states(ckpt, {"model": net}, "this search network")
    return config, data, net


def _tune_batches(data: Any, batch_size: int, round_index: int, tune_steps: int) -> Iterator:
    """The weight half's batches for one round's fine-tuning: seeded epochs of their own, so a resumed round reads
    the same batches."""
    epoch = _TUNE_STREAM + round_index * (tune_steps // max(data.steps_per_epoch(batch_size), 1) + 1)
    while True:
        yield from data.batches("train", epoch, batch_size)
        epoch += 1


def _save_state(path: Path, net: Any, optimizer: Any, rows: list, rounds: int, options: PTOptions,
                search_step: int) -> None:
    import io

    buf = io.BytesIO()
    torch.save({"format": STATE_FORMAT, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
                "rows": json.dumps(rows), "rounds": rounds, "options": dataclasses.asdict(options),
                "search_step": search_step}, buf)
    write_bytes_atomic(path, buf.getvalue())


def run_pt(run_dir: str | Path, options: PTOptions = PTOptions(),
           progress: Callable[[int, int, dict[str, Any]], None] | None = None) -> PTResult:
    """PT on the search in `run_dir`, from its checkpoint (or from pt_state.pt where a PT of the same options
    stopped). `progress(done, total, row)` after each decision. Writes pt.jsonl and pt_state.pt only."""
    run_dir = Path(run_dir)
    _check_run(run_dir)
    ckpt = load_checkpoint(run_dir / rundir.CHECKPOINT)
    config, data, net = _data_and_net(ckpt)
    rounds = plan(config.nodes, options.seed)
    total = sum(len(r) for r in rounds)
    proj = _Projection(net.op_weights(), config.nodes)  # the search's op weights: the alphas are never changed
    optimizer = torch.optim.SGD(net.weight_parameters(), lr=config.w_lr / 10, momentum=config.w_momentum,
                                weight_decay=config.w_weight_decay)
    steps = data.steps_per_epoch(config.batch_size)
    n_eval = min(steps, options.eval_batches or MAX_EVAL_BATCHES)
    eval_batches = list(itertools.islice(data.batches("valid", 0, config.batch_size), n_eval))
    state_path, rows_path = run_dir / STATE, run_dir / ROWS
    rows: list[dict[str, Any]] = []
    done_rounds = 0
    if state_path.exists():
        state = load_checkpoint(state_path, STATE_FORMAT, ("model", "optimizer", "rows", "rounds", "options",
                                                           "search_step"), "PT")
        if state["options"] != dataclasses.asdict(options) or state["search_step"] != ckpt["step"]:
            raise PTError(f"{run_dir.name} holds a PT with other options ({state['options']}, search step "
                          f"{state['search_step']}); pass the same options, or delete {STATE} and {ROWS} to start over")
        load_states(state, {"model": net, "optimizer": optimizer}, "this search network")
        rows, done_rounds = json.loads(state["rows"]), int(state["rounds"])
        for row in rows:
            proj.apply(row)
        if read_jsonl(rows_path) != rows:  # killed between the state and the rows: the state is the truth
            write_bytes_atomic(rows_path, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode())
    elif rows_path.exists():
        rows_path.unlink()  # rows without a state: a PT killed in its first round; start again
    resumed_from = done_rounds
    for r in range(done_rounds, len(rounds)):
        t0 = time.monotonic()
        new = []
        for what, kind, index in rounds[r]:
            decide = _decide_op if what == "op" else _decide_node
            row = {"round": r, **decide(net, eval_batches, proj, kind, index)}
            proj.apply(row)
            new.append(row)
        if r < len(rounds) - 1:
            batches = _tune_batches(data, config.batch_size, r, options.tune_steps)
            loss = fine_tune(net, optimizer, batches, proj.weights(), options.tune_steps, config.w_grad_clip)
            for row in new:
                row["tune_loss"] = loss
        after = evaluate(net, eval_batches, proj.weights())
        for row in new:
            row |= {"tune_steps": options.tune_steps if r < len(rounds) - 1 else 0, "acc_after": after[0],
                    "seconds": round(time.monotonic() - t0, 3)}
        rows += new
        _save_state(state_path, net, optimizer, rows, r + 1, options, int(ckpt["step"]))
        append_jsonl(rows_path, new)
        if progress is not None:
            for i, row in enumerate(new):
                progress(len(rows) - len(new) + i + 1, total, row)
    return PTResult(proj.genotype(), rows, resumed_from)
