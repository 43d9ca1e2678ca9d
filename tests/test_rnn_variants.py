"""The DARTS variants on the recurrent cell (docs/variants.md, "On the recurrent cell").

Those whose idea applies to any softmax over an edge's ops search the recurrent cell and record what they computed
(their buffers in every alphas.jsonl line, so a reader gets the same op weights); those that need the
convolutional cell are refused by the config with one line saying why.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.core.atomic import read_jsonl
from engine.core.config import ConfigError
from engine.runs import rundir
from engine.runs.control import Control
from engine.runs.follow import snapshot_from_dir
from engine.runs.snapshot import SnapshotBox
from engine.runtime.threads import apply_threads
from engine.search.rnn_config import RNNSearchConfig, from_rnn_preset
from engine.space.rnn.genotype import Genotype
from engine.variants import record_genotype, record_weights, space_variants
from engine.variants.fair_darts import threshold_recurrent
from tests.waiting import StopAt

ROOT = Path(__file__).resolve().parents[1]
RNN_VARIANTS = ("darts", "fair_darts", "drnas", "darts_minus", "beta_darts", "sdarts_rs")


@pytest.fixture(autouse=True)
def _one_thread():
    apply_threads(1)  # the recurrent step's small products: one thread is the fast and the repeatable setting


def _corpus(tmp_path: Path) -> str:
    rng = np.random.default_rng(12)
    words = [f"w{k}" for k in range(25)]
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for split, lines in (("train", 40), ("valid", 12), ("test", 4)):
        text = "\n".join(" ".join(rng.choice(words, size=6)) for _ in range(lines)) + "\n"
        (corpus / f"{split}.txt").write_text(text)
    return str(corpus)


def _small(tmp_path: Path, **changes) -> RNNSearchConfig:
    """Two short epochs on a tiny corpus, so a schedule changes within the run."""
    base = dict(corpus=_corpus(tmp_path), max_vocab=30, emsize=8, nhid=8, nodes=3, bptt=6, batch_size=4, epochs=2,
                checkpoint_every_s=1e9, log_every=1, device="cpu")
    return from_rnn_preset("rnn-demo", **(base | changes))


def _net(variant: str = "darts", seed: int = 0, **options):
    from engine.nn.rnn_supernet import RNNSearchNetwork
    torch.manual_seed(seed)
    return RNNSearchNetwork(20, 8, 8, nodes=3, variant=variant, variant_options=options)


def _step(model, seed: int = 1, second_order: bool = False):
    from engine.search.rnn_step import bilevel_step, make_optimizers
    g = torch.Generator().manual_seed(5)
    train = (torch.randint(0, 20, (6, 4), generator=g), torch.randint(0, 20, (6, 4), generator=g))
    valid = (torch.randint(0, 20, (6, 4), generator=g), torch.randint(0, 20, (6, 4), generator=g))
    w_opt, a_opt = make_optimizers(model)
    torch.manual_seed(seed)  # the same dropout masks (and noise) for every model stepped with this seed
    return bilevel_step(model, w_opt, a_opt, train, valid, model.init_hidden(4), model.init_hidden(4),
                        second_order=second_order)


# ---------------------------------------------------------------- which variants, and the refusals

def test_the_recurrent_space_takes_the_variants_that_relax_any_softmax_over_ops():
    assert space_variants("rnn") == RNN_VARIANTS
    assert set(space_variants("cnn")) >= {"pc_darts", "gdas", *RNN_VARIANTS}


@pytest.mark.parametrize("variant, words", [
    ("pc_darts", "no channels to sample"),
    ("gdas", "no one-op path"),
])
def test_a_variant_that_needs_the_convolutional_cell_is_refused_in_one_line(variant, words):
    with pytest.raises(ConfigError) as err:
        from_rnn_preset("rnn-demo", variant=variant)
    assert err.value.field == "variant" and "\n" not in str(err.value)
    assert words in str(err.value) and "one of darts, fair_darts" in str(err.value)


@pytest.mark.parametrize("changes, field", [
    (dict(variant="beta_darts", beta_base="pc_darts"), "beta_base"),
    (dict(variant="fair_darts", order="second"), "order"),
    (dict(variant="drnas", order="second"), "order"),
    (dict(pc_k=2), "pc_k"),                                        # another variant's option
    (dict(variant="sdarts_rs", sdarts_epsilon_min=0.5, sdarts_epsilon_max=0.1), "sdarts_epsilon_max"),
])
def test_a_variants_options_are_checked_on_the_recurrent_config(changes, field):
    with pytest.raises(ConfigError) as err:
        from_rnn_preset("rnn-demo", **changes)
    assert err.value.field == field and "\n" not in str(err.value)


def test_a_variant_and_its_options_round_trip_through_config_json():
    cfg = from_rnn_preset("rnn-demo", variant="beta_darts", beta_decay_weight=5.0, order="second")
    assert cfg.beta_decay_weight == 5.0 and cfg.options == (("beta_decay_weight", 5.0),)
    data = cfg.to_dict()
    assert data["variant"] == "beta_darts" and data["beta_decay_weight"] == 5.0 and "pc_k" in data
    assert RNNSearchConfig.from_dict(data) == cfg
    assert from_rnn_preset("rnn-demo").variant == "darts"  # the default: the paper's softmax


def test_the_command_line_refuses_pc_darts_with_exit_2_and_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine", "search", "--preset", "rnn-demo", "--set",
                          "variant=pc_darts", "--runs-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "variant='pc_darts' is not valid" in lines[0], out.stderr
    assert not list(tmp_path.iterdir())  # refused before a run directory was made


def test_the_setup_form_offers_the_recurrent_variants_only():
    from app.panels import setup_rnn
    assert tuple(setup_rnn.FIELDS["variant"][2]) == space_variants("rnn")
    config, errors = setup_rnn.problems("rnn-demo", {"variant": "fair_darts", "nhid": 32.0})
    assert errors == [] and config.variant == "fair_darts" and config.fair_threshold == 0.85


# ---------------------------------------------------------------- each variant searches and records its weights

def _expected(variant: str, a: np.ndarray) -> np.ndarray:
    """The op weights by each variant's definition, written out here, from recorded alphas."""
    if variant == "fair_darts":
        return 1 / (1 + np.exp(-a))
    if variant == "drnas":  # the Dirichlet mean of concentration ELU(alpha) + 1
        c = np.where(a > 0, a, np.expm1(a)) + 1
        return c / c.sum(1, keepdims=True)
    e = np.exp(a - a.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


@pytest.mark.parametrize("variant", RNN_VARIANTS)
def test_each_variant_searches_and_every_reader_gets_its_weights(tmp_path, variant):
    cfg = from_rnn_preset("rnn-smoke", variant=variant, device="cpu")
    control, box = Control(), SnapshotBox()
    assert run_rnn_search(cfg, tmp_path, control=control, callbacks=[StopAt(3, control)], box=box) == "stopped"
    rows = read_jsonl(tmp_path / rundir.ALPHAS)
    assert [r["step"] for r in rows] == [1, 2, 3]
    buffers = {"darts_minus": {"aux_skip_weight"}, "beta_darts": {"beta_weight"}, "sdarts_rs": {"epsilon"},
               "fair_darts": {"threshold"}}.get(variant, set())
    assert set(rows[-1]) == {"step", "epoch", "recurrent", *buffers}
    config = rundir.read_config(tmp_path)["config"]
    assert config["variant"] == variant
    weights = record_weights(rows[-1], config)["recurrent"]
    np.testing.assert_allclose(weights, _expected(variant, np.asarray(rows[-1]["recurrent"])), atol=1e-12)
    snap = box.get()  # what the live panel draws: the variant's weights of the network, not a softmax of its own
    np.testing.assert_allclose(snap.weights["recurrent"], weights, atol=1e-6)
    followed = snapshot_from_dir(tmp_path)  # follow mode rebuilds them from the files with the run's config
    np.testing.assert_allclose(followed.weights["recurrent"], weights, atol=1e-12)
    stopped = rundir.read_genotypes(tmp_path)[-1]
    assert Genotype.from_dict(stopped["genotype"]) == record_genotype(rows[-1], config)


def run_rnn_search(*args, **kwargs):
    from engine.search.rnn_loop import run_rnn_search as run
    return run(*args, **kwargs)


# ---------------------------------------------------------------- the mechanisms, against plain DARTS

@pytest.mark.parametrize("second_order", [False, True])
def test_the_beta_decay_loss_adds_its_gradient_to_the_alphas(second_order):
    darts, beta = _net("darts"), _net("beta_darts", beta_decay_weight=50.0)
    beta.start_epoch(1, 2)  # lambda = 50 * 1 / 2
    assert float(beta.beta_weight) == 25.0
    alphas = darts.alphas.detach().clone()
    assert torch.equal(alphas, beta.alphas.detach())
    a, b = _step(darts, second_order=second_order), _step(beta, second_order=second_order)
    assert a.valid_loss == b.valid_loss  # the same network, batch and masks: only the objective differs
    # d/dalpha of lambda * mean_e logsumexp(alpha_e) = lambda / E * softmax(alpha_e)
    want = 25.0 / alphas.shape[0] * torch.softmax(alphas, dim=-1)
    torch.testing.assert_close(beta.alphas.grad - darts.alphas.grad, want, atol=1e-6, rtol=1e-5)
    assert (beta.alphas.grad - darts.alphas.grad).abs().min() > 0.5  # about lambda / E / 5 = 0.83 per entry


def test_sdarts_rs_perturbs_the_weight_step_only():
    darts, sd = _net("darts"), _net("sdarts_rs", sdarts_epsilon_min=0.3)
    sd.start_epoch(0, 2)
    assert float(sd.epsilon) == pytest.approx(0.3)
    a, b = _step(darts), _step(sd)
    # the architecture step is plain DARTS: the same loss, gradient and alphas after it
    assert a.valid_loss == b.valid_loss
    assert torch.equal(darts.alphas.grad, sd.alphas.grad) and torch.equal(darts.alphas, sd.alphas)
    # the weight step saw other op weights: its loss and the weights it left differ
    assert a.train_loss != b.train_loss
    assert not torch.equal(darts.decoder.weight, sd.decoder.weight)
    # those op weights: rows on the simplex, within epsilon of the softmax before projection
    with torch.no_grad():
        noisy = sd.variant.weight_step_weights(sd.arch())["recurrent"]
        plain = torch.softmax(sd.alphas, dim=-1)
    torch.testing.assert_close(noisy.sum(1), torch.ones(len(noisy)))
    assert 0 < (noisy - plain).abs().max() <= 2 * 0.3
    assert not noisy.requires_grad  # a constant of the step: no gradient to the alphas


def test_the_darts_minus_skip_is_an_identity_highway_that_fades_to_plain_darts():
    darts, minus = _net("darts"), _net("darts_minus")
    words = torch.randint(0, 20, (5, 2), generator=torch.Generator().manual_seed(3))
    darts.eval(), minus.eval()
    with torch.no_grad():
        plain = darts(words, darts.init_hidden(2))[0]
        minus.start_epoch(0, 3)
        assert float(minus.aux_skip_weight) == 1.0
        helped = minus(words, minus.init_hidden(2))[0]
        minus.start_epoch(2, 3)  # the last epoch: beta = 0, the supernet is DARTS's again
        assert float(minus.aux_skip_weight) == 0.0
        faded = minus(words, minus.init_hidden(2))[0]
        # beta x identity's highway on every edge is beta more weight on the identity column, outside the softmax:
        # the cell run with those weights by hand (the language model's forward, under the network's own)
        darts.cell.probs = torch.softmax(darts.alphas, -1) + torch.tensor([0.0, 0, 0, 0, 1.0])
        by_hand = super(type(darts), darts).forward(words, darts.init_hidden(2))[0]
    torch.testing.assert_close(faded, plain, rtol=0, atol=0)
    assert (helped - plain).abs().max() > 1e-3
    torch.testing.assert_close(helped, by_hand)


def test_fair_darts_keeps_the_recurrent_inputs_that_reach_the_threshold_and_renumbers_the_nodes():
    w = np.full((6, 5), 0.1)  # 3 nodes: rows (0->1), (0->2), (1->2), (0->3), (1->3), (2->3)
    w[0, 1] = 0.9    # node 1: tanh from s_0, kept
    w[2, 4] = 0.6    # node 2: identity from node 1, below 0.85: no node
    w[4, 2] = 0.95   # node 3: relu from node 1, kept, and now node 2
    assert threshold_recurrent(w, 0.85) == Genotype([("tanh", 0), ("relu", 1)], (1, 2))
    w[5, 3] = 0.99   # node 3 now prefers node 2, which was not kept: node 3 goes too
    assert threshold_recurrent(w, 0.85) == Genotype([("tanh", 0)], (1,))
    assert threshold_recurrent(np.full((6, 5), 0.5), 0.85).nodes == 1  # none kept: node 1's pick stays


# ---------------------------------------------------------------- exact resume

@pytest.mark.parametrize("variant", ["sdarts_rs", "darts_minus"])
def test_a_stopped_variant_search_resumes_to_the_same_run(tmp_path, variant):
    cfg = _small(tmp_path, variant=variant)
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir(), part.mkdir()
    assert run_rnn_search(cfg, full) == "finished"
    rows = read_jsonl(full / rundir.ALPHAS)
    steps_per_epoch = rundir.read_config(full)["steps_per_epoch"]
    key = {"sdarts_rs": "epsilon", "darts_minus": "aux_skip_weight"}[variant]
    assert rows[0][key] != rows[-1][key]  # the schedule moved between the epochs
    control = Control()
    stop_at = steps_per_epoch + 2  # mid-epoch in the second: the schedule and the RNG come from the checkpoint
    assert run_rnn_search(cfg, part, control=control, callbacks=[StopAt(stop_at, control)]) == "stopped"
    assert run_rnn_search(cfg, part, resume=True) == "finished"
    resumed = read_jsonl(part / rundir.ALPHAS)
    assert resumed == rows  # every alpha and buffer of every step
    assert [m["train_loss"] for m in rundir.read_metrics(full)] == [m["train_loss"] for m in rundir.read_metrics(part)]
    box = SnapshotBox()  # another variant cannot take over the checkpoint
    assert run_rnn_search(cfg.replace(variant="darts", options=()), part, resume=True, box=box) == "failed"
    assert box.get().error.startswith(f"variant='darts' is not valid: {variant!r}, as the run was searched with")
