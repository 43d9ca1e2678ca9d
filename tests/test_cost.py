"""Cost-aware search (engine/nn/cost.py): the expected cost of the relaxed cells, the penalty, and the run's rows."""

import numpy as np
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from engine.core.config import ConfigError, parse_overrides
from engine.nn import cost
from engine.nn.network import NetworkCIFAR
from engine.nn.supernet import SearchNetwork
from engine.runs import rundir
from engine.search.architect import Architect
from engine.search.config import SearchConfig
from engine.search.loop import run_search
from engine.space.cnn.cell import CELL_KINDS, PRIMITIVES, num_edges
from engine.space.cnn.genotype import KNOWN_GENOTYPES, genotype_from_weights


def _one_hot(rng: np.random.Generator, nodes: int = 4) -> dict[str, np.ndarray]:
    """Op weights with one op per edge: per node two edges get a random op other than none, the rest none."""
    out = {}
    for kind in CELL_KINDS:
        w, row = np.zeros((num_edges(nodes), len(PRIMITIVES))), 0
        for i in range(nodes):
            kept = rng.choice(2 + i, size=2, replace=False)
            for j in range(2 + i):
                w[row + j, rng.integers(1, len(PRIMITIVES)) if j in kept else PRIMITIVES.index("none")] = 1.0
            row += 2 + i
        out[kind] = w
    return out


def _real_cell_costs(genotype, C: int, layers: int, size: int) -> tuple[int, int]:
    """Parameters and mult-adds of the ops of every cell of the network built from the genotype (stem,
    preprocessing and classifier left out), counted on that network: parameters by module, mult-adds by
    FlopCounterMode's per-module table."""
    net = NetworkCIFAR(C, 10, layers, False, genotype).eval()
    params = sum(p.numel() for name, p in net.named_parameters() if "._ops." in name)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(torch.zeros(1, 3, size, size))
    flops = counter.get_flop_counts()
    ops = [name for name in flops if name.count(".") == 4 and "._ops." in name]  # NetworkCIFAR.cells.i._ops.k
    return params, sum(sum(flops[name].values()) for name in ops) // 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_hot_weights_cost_exactly_the_derived_genotypes_cells(seed):
    """With one op per edge, the expected cost is the real cost of the genotype derived from those weights,
    counted on the network built from it at the search network's size (C=8, 5 cells, 16x16)."""
    C, layers, size = 8, 5, 16
    weights = _one_hot(np.random.default_rng(seed))
    genotype = genotype_from_weights(weights["normal"], weights["reduce"])
    tables = cost.cost_tables(C, layers, 4, size)
    params, madds = _real_cell_costs(genotype, C, layers, size)
    assert cost.expected_cost(weights, tables.params) == cost.genotype_cost(genotype, tables.params) == params
    assert cost.expected_cost(weights, tables.madds) == cost.genotype_cost(genotype, tables.madds) == madds
    assert params > 0 and madds > 0


def test_darts_v2_at_the_papers_search_size():
    genotype, tables = KNOWN_GENOTYPES["DARTS_V2"], cost.cost_tables(16, 8, 4, 32)
    assert (cost.genotype_cost(genotype, tables.params), cost.genotype_cost(genotype, tables.madds)) == \
        _real_cell_costs(genotype, 16, 8, 32)


def test_uniform_weights_cost_the_mean_op_and_the_penalty_pushes_towards_cheap_ops():
    tables = cost.cost_tables(4, 3, 4, 8)
    alphas = {k: torch.zeros(num_edges(4), len(PRIMITIVES), requires_grad=True) for k in CELL_KINDS}
    weights = {k: torch.softmax(a, -1) for k, a in alphas.items()}
    expected = cost.expected_cost(weights, tables.params)
    assert expected.item() == pytest.approx(sum(tables.params[k].mean(1).sum() for k in CELL_KINDS))
    pen = cost.penalty(weights, tables.params, weight=2.0, budget=None)
    assert pen.item() == pytest.approx(2.0 * expected.item() / 1e6)
    pen.backward()
    for kind in CELL_KINDS:  # descending the gradient raises the cheaper ops of each edge, lowers the dearer
        g, c = alphas[kind].grad.numpy(), tables.params[kind]
        for e in range(len(c)):
            if np.ptp(c[e]) > 0:
                assert np.corrcoef(g[e], c[e])[0, 1] > 0.99


def test_a_budget_penalises_only_what_is_above_it():
    tables = cost.cost_tables(4, 3, 4, 8)
    weights = {k: torch.full((num_edges(4), len(PRIMITIVES)), 1 / len(PRIMITIVES)) for k in CELL_KINDS}
    expected = cost.expected_cost(weights, tables.params).item()
    assert cost.penalty(weights, tables.params, 1.0, budget=expected * 2).item() == 0.0
    assert cost.penalty(weights, tables.params, 1.0, budget=expected / 2).item() == pytest.approx(expected / 2 / 1e6)


def test_the_architect_adds_the_penalty_to_the_architecture_objective():
    torch.manual_seed(0)
    model = SearchNetwork(4, 10, 3, in_channels=3, nodes=4)
    tables = cost.cost_tables(4, 3, 4, 8)
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    plain = Architect(model, 0.1, a_weight_decay=0.0)
    penalised = Architect(model, 0.1, a_weight_decay=0.0,
                          cost=lambda w: cost.penalty(w, tables.params, weight=1e3, budget=None))
    model.eval()  # the same forward twice (BatchNorm on batch statistics either way, no running-stat drift)
    (obj_plain, loss_plain, _), (obj_cost, loss_cost, _) = (
        a._valid_loss(x, y, False, torch.device("cpu")) for a in (plain, penalised))
    want = 1e3 * cost.expected_cost(model.variant.weights(model.arch()), tables.params).item() / 1e6
    assert loss_plain.item() == pytest.approx(loss_cost.item())
    assert obj_cost.item() - obj_plain.item() == pytest.approx(want, rel=1e-5)


def test_bad_cost_settings_are_refused_with_a_reason():
    for field, value, needle in [("cost_weight", -1.0, "cost_weight"), ("cost_kind", "flops", "params, madds"),
                                 ("cost_budget", 0.0, "positive"), ("cost_budget", 5e4, "cost_weight > 0")]:
        with pytest.raises(ConfigError, match=needle):
            SearchConfig(**{field: value})
    assert (parse_overrides(["cost_budget=none", "cost_weight=0.5"], SearchConfig)
            == {"cost_budget": None, "cost_weight": 0.5})
    assert parse_overrides(["cost_budget=2e5"], SearchConfig)["cost_budget"] == 2e5
    with pytest.raises(ConfigError, match="cost_budget"):
        parse_overrides(["cost_budget=lots"], SearchConfig)


def test_a_cost_aware_smoke_search_logs_its_costs_and_gets_cheaper(tmp_path, smoke):
    """Every metrics row carries the expected and derived costs; with a heavy penalty the expected
    parameters fall step by step while the plain search's barely move."""
    rows = {}
    for name, overrides in {"plain": {}, "penalised": {"cost_weight": 1e5}}.items():
        config = smoke.replace(**{"epochs": 2, "log_every": 1, "a_lr": 0.1, **overrides})
        assert run_search(config, tmp_path / name) == "finished"
        rows[name] = rundir.read_metrics(tmp_path / name)
    tables = cost.cost_tables(config.init_channels, config.layers, config.nodes, 8)
    for name, metrics in rows.items():
        assert all({"expected_params", "expected_madds", "cell_params", "cell_madds"} <= set(m) for m in metrics)
        last = rundir.read_alphas(tmp_path / name)[-1]
        final = rundir.latest_genotype(tmp_path / name)
        assert metrics[-1]["cell_params"] == cost.genotype_cost(final, tables.params), name
        assert metrics[-1]["step"] == last["step"]
    fall = {name: m[0]["expected_params"] - m[-1]["expected_params"] for name, m in rows.items()}
    assert fall["penalised"] > 10 * abs(fall["plain"]) and fall["penalised"] > 0, fall


def _cost_view_script():
    from app.panels import collapse as view
    from engine.runs.snapshot import Snapshot

    rows = [{"step": s, "expected_params": 5000.0 - 100 * s, "cell_params": 4000 - 50 * s,
             "expected_madds": 9e5 - s, "cell_madds": 8e5} for s in (1, 2, 3)]
    view.render(Snapshot(run_id="r", config={"variant": "darts", "cost_weight": 2.0, "cost_kind": "params",
                                             "cost_budget": 3000.0}, metrics=tuple(rows)), key="t")


def test_the_live_panel_plots_the_expected_and_derived_costs():
    from streamlit.testing.v1 import AppTest

    from app.panels.collapse import frames

    at = AppTest.from_function(_cost_view_script, default_timeout=60).run()
    assert not at.exception
    assert [h.value for h in at.subheader] == ["Cost of the cells"]
    assert any("Penalised: 2.0 x expected params" in c.value and "3,000" in c.value for c in at.caption)
    data = frames([{"step": 1, "expected_params": 10.5, "cell_params": 12}])
    assert data["params"].to_dict("records") == [{"step": 1, "series": "expected", "value": 10.5},
                                                 {"step": 1, "series": "derived genotype", "value": 12.0}]


def test_costing_the_ops_leaves_the_seeded_random_stream_alone():
    """The tables are built (random op init) after the loop seeded torch: the first search in a process must
    draw what a later one with the same seed draws (GDAS and DrNAS sample from that stream)."""
    cost.op_cost.cache_clear()
    cost.cost_tables.cache_clear()
    torch.manual_seed(0)
    cost.cost_tables(4, 3, 4, 8)
    after_tables = torch.rand(3)
    torch.manual_seed(0)
    assert torch.equal(after_tables, torch.rand(3))
