"""The recurrent search space (engine/space/rnn/): its genotype and text forms, the derivation rule, and the search
and evaluation networks checked against the paper's equations written out here in numpy."""

from __future__ import annotations

import json
from collections import namedtuple

import numpy as np
import pytest
import torch

from engine.nn.rnn_network import RNNModel, check_sizes
from engine.nn.rnn_supernet import RNNSearchNetwork
from engine.space import get_space, space_names
from engine.space.rnn.cell import PRIMITIVES, edge_endpoints, nodes_of, num_edges
from engine.space.rnn.genotype import KNOWN_GENOTYPES, Genotype, derive_genotype, genotype_from_weights
from tests.waiting import StopAt

# quark0/darts rnn/genotypes.py, DARTS_V2 (the paper's Figure 6 cell), exactly as that file writes it.
REFERENCE_DARTS_V2 = ("Genotype(recurrent=[('sigmoid', 0), ('relu', 1), ('relu', 1), ('identity', 1), ('tanh', 2), "
                      "('sigmoid', 5), ('tanh', 3), ('relu', 5)], concat=range(1, 9))")


# ---------------------------------------------------------------- the space and its genotype

def test_the_rnn_space_is_the_papers_cell():
    space = get_space("rnn")
    assert "rnn" in space_names() and "cnn" in space_names()
    assert space.weights_shape(8) == (36, 5) and num_edges(8) == 36 and nodes_of(36) == 8
    assert space.primitives == ("none", "tanh", "relu", "sigmoid", "identity")
    assert space.cell_kinds == ("recurrent",) and space.inputs_per_node == 1 and space.data_kind == "text"
    assert edge_endpoints(3) == [(0, 0), (0, 1), (1, 1), (0, 2), (1, 2), (2, 2)]
    assert space.edge_labels(2) == ["0 -> 1", "0 -> 2", "1 -> 2"]  # the genotype's numbers: 0 is s_0
    with pytest.raises(ValueError, match="35 edges is not a recurrent DARTS cell"):
        nodes_of(35)


def test_darts_rnn_is_the_published_cell_and_prints_as_the_reference():
    g = KNOWN_GENOTYPES["DARTS_RNN"]
    assert g.to_darts() == REFERENCE_DARTS_V2 == str(g)
    assert g.recurrent[0] == ("sigmoid", 0) and g.recurrent[5] == ("sigmoid", 5) and g.concat == tuple(range(1, 9))
    assert get_space("rnn").known_genotypes["DARTS_RNN"] is g


@pytest.mark.parametrize("name", sorted(KNOWN_GENOTYPES))
def test_text_round_trips(name):
    g = KNOWN_GENOTYPES[name]
    assert Genotype.parse(g.to_darts()) == g
    assert Genotype.parse(f"{name} = {g.to_darts()}") == g
    assert Genotype.parse(g.to_json()) == g == Genotype.from_dict(json.loads(g.to_json()))
    assert Genotype.parse(json.dumps({"step": 3, "genotype": g.to_dict()})) == g  # a genotypes.jsonl row
    # What the reference does with the pasted line: its namedtuple takes it as written. The text is our own output.
    reference = namedtuple("Genotype", "recurrent concat")
    pasted = eval(g.to_darts(), {"__builtins__": {}}, {"Genotype": reference, "range": range})
    assert [tuple(p) for p in pasted.recurrent] == list(g.recurrent) and tuple(pasted.concat) == g.concat


def test_a_non_contiguous_concat_prints_as_a_list():
    enas = KNOWN_GENOTYPES["ENAS_RNN"]
    assert enas.to_darts().endswith("concat=[2, 5, 6, 9, 10, 11])") and enas.nodes == 11


@pytest.mark.parametrize("text, message", [
    ("__import__('os').system('echo hi')", "expected `Genotype"),
    ("Genotype(recurrent=[('relu', 0)], concat=[__import__('os')])", "not a plain literal"),
    ("Genotype(recurrent=[('none', 0)], concat=[1])", "'none' is not an op"),
    ("Genotype(recurrent=[('conv', 0)], concat=[1])", "unknown op 'conv'"),
    ("Genotype(recurrent=[('relu', 0), ('tanh', 2)], concat=[1, 2])", "node 1 takes input 2; node 1 may take"),
    ("Genotype(recurrent=[('relu', 0)], concat=[2])", r"concat \[2\] must name distinct"),
    ("Genotype(recurrent=[('relu', 0)], concat=[1, 1])", r"concat \[1, 1\] must name distinct"),
    ("Genotype(recurrent=[], concat=[1])", "recurrent has no"),
    ("Genotype(recurrent=[('relu', 0)])", r"missing \['concat'\]"),
    ("Genotype(normal=[('relu', 0)], recurrent=[('relu', 0)], concat=[1])", r"unknown \['normal'\]"),
    ('{"recurrent": [["relu", true]], "concat": [1]}', "must hold integers"),
])
def test_bad_genotype_text_is_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message):
        Genotype.parse(text)


# ---------------------------------------------------------------- derivation

def _weights(rows):
    return np.asarray(rows, dtype=np.float64)


def test_each_node_keeps_its_strongest_real_op_on_its_strongest_edge():
    #        none  tanh relu  sig   id
    w = _weights([[0.1, 0.2, 0.3, 0.1, 0.3],    # s_0 -> 0: relu and identity tie; the earlier op wins
                  [0.9, 0.0, 0.1, 0.0, 0.0],    # s_0 -> 1: none dominates, real ops are weak
                  [0.1, 0.1, 0.1, 0.5, 0.2],    # 0 -> 1: sigmoid 0.5 wins the node
                  [0.2, 0.3, 0.1, 0.2, 0.2],    # s_0 -> 2: tanh 0.3
                  [0.2, 0.1, 0.1, 0.3, 0.3],    # 0 -> 2: 0.3 too: ties go to the earlier input (s_0)
                  [0.2, 0.2, 0.2, 0.2, 0.2]])   # 1 -> 2
    g = genotype_from_weights(w)
    assert g.recurrent == (("relu", 0), ("sigmoid", 1), ("tanh", 0)) and g.concat == (1, 2, 3)


def test_none_never_wins_even_when_it_dominates_every_edge():
    w = _weights([[0.96, 0.01, 0.01, 0.01, 0.01], [0.9, 0.02, 0.05, 0.01, 0.02], [0.95, 0.01, 0.01, 0.02, 0.01]])
    assert genotype_from_weights(w).recurrent == (("tanh", 0), ("relu", 0))


def test_raw_alphas_are_ranked_by_their_softmax():
    # Edge s_0 -> 1 has the larger raw real alpha (1.0) but its none takes almost all of its softmax; edge 0 -> 1
    # gives identity a fifth or more.
    alphas = _weights([[0, 0, 0, 0, 1], [10, 1, 0, 0, 0], [0, 0, 0, 0, 0.5]])
    assert derive_genotype(alphas).recurrent == (("identity", 0), ("identity", 1))
    assert derive_genotype(torch.tensor(alphas, requires_grad=True)) == derive_genotype(alphas)


def _reference_parse(probs, steps):
    """quark0/darts rnn/model_search.py's `genotype` rule, written out again: stable sort, strict `>`."""
    gene, start, none = [], 0, PRIMITIVES.index("none")
    for i in range(steps):
        w = probs[start:start + i + 1]
        j = sorted(range(i + 1), key=lambda x: -max(w[x][k] for k in range(len(w[x])) if k != none))[0]
        k_best = None
        for k in range(len(w[j])):
            if k != none and (k_best is None or w[j][k] > w[j][k_best]):
                k_best = k
        gene.append((PRIMITIVES[k_best], j))
        start += i + 1
    return gene


def test_the_rule_agrees_with_the_references_on_random_and_tied_weights():
    rng = np.random.default_rng(0)
    for trial in range(200):
        w = rng.random((36, 5))
        if trial % 2:
            w = np.round(w * 3) / 3  # coarse values: many ties between edges and between ops
        assert list(genotype_from_weights(w).recurrent) == _reference_parse(w, 8)


@pytest.mark.parametrize("weights, message", [
    (np.zeros((36, 4)), r"must be \(edges, 5\)"),
    (np.zeros((35, 5)), "35 edges is not a recurrent DARTS cell"),
    (np.full((3, 5), np.nan), "NaN or inf"),
])
def test_bad_op_weights_are_named(weights, message):
    with pytest.raises(ValueError, match=message):
        genotype_from_weights(weights)


def test_the_space_derives_from_its_weights_and_draws_the_cell():
    space = get_space("rnn")
    rng = np.random.default_rng(1)
    a = rng.normal(size=(36, 5))
    sm = np.exp(a) / np.exp(a).sum(1, keepdims=True)
    assert space.derive({"recurrent": sm}) == derive_genotype(a)
    dot = space.dot(KNOWN_GENOTYPES["DARTS_RNN"])
    assert dot.startswith("digraph") and dot.count('[label="relu"]') == 3 and dot.count('-> "h_t"') == 8


# ---------------------------------------------------------------- the equations, in numpy

def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


_F = {"tanh": np.tanh, "relu": lambda v: np.maximum(v, 0.0), "sigmoid": _sig, "identity": lambda v: v}


def _bn(v, eps=1e-5):  # batch norm without affine parameters, with the batch's (biased) statistics
    return (v - v.mean(0)) / np.sqrt(v.var(0) + eps)


def _first_state(x, h, w0):
    hid = h.shape[1]
    z = np.concatenate([x, h], 1) @ w0
    return h + _sig(z[:, :hid]) * (np.tanh(z[:, hid:]) - h)


def _highway(s, w, op):
    hid = s.shape[1]
    z = s @ w
    return s + _sig(z[:, :hid]) * (_F[op](z[:, hid:]) - s)


def np_search_lm(words, h, emb, bias, w0, ws, alphas):
    """Paper section 2.1-2.2: each node a softmax(alpha)-weighted sum over every earlier state and every real op
    of the highway form, batch-normed during search; h_t the mean of the nodes; tied decoder; log-softmax."""
    p = np.exp(alphas) / np.exp(alphas).sum(1, keepdims=True)
    out = []
    for t in range(words.shape[0]):
        states = [_bn(_first_state(emb[words[t]], h, w0))]
        e = 0
        for i in range(len(ws)):
            node = 0.0
            for j in range(i + 1):
                for k, op in enumerate(PRIMITIVES):
                    if op != "none":
                        node = node + p[e, k] * _highway(states[j], ws[i], op)
                e += 1
            states.append(_bn(node))
        h = np.mean(states[1:], axis=0)
        out.append(h)
    logits = np.stack(out) @ emb.T + bias
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), h


def np_genotype_lm(words, h, emb, bias, w0, ws, genotype):
    out = []
    for t in range(words.shape[0]):
        states = [_first_state(emb[words[t]], h, w0)]
        for w, (op, j) in zip(ws, genotype.recurrent, strict=True):
            states.append(_highway(states[j], w, op))
        h = np.mean([states[c] for c in genotype.concat], axis=0)
        out.append(h)
    logits = np.stack(out) @ emb.T + bias
    return logits - np.log(np.exp(logits).sum(-1, keepdims=True)), h


def _params(model):
    return {"emb": model.encoder.weight, "bias": model.decoder.bias, "w0": model.cell.w0,
            **{f"w{i + 1}": w for i, w in enumerate(model.cell.ws)}}


def _np(params):
    return {k: v.detach().numpy().copy() for k, v in params.items()}


def _nll(logp, targets):
    return -np.take_along_axis(logp, targets[..., None], -1).mean()


def _check_forward_and_gradient(model, np_forward, extra):
    """The model's log-probs, last state and every parameter's gradient of the NLL against the numpy equations:
    forward to 1e-10, gradient by central differences to 1e-6 (float64)."""
    torch.manual_seed(0)
    vocab, steps, batch = model.ntoken, 3, 5
    words = torch.randint(0, vocab, (steps, batch))
    targets = torch.randint(0, vocab, (steps, batch))
    h0 = 0.3 * torch.randn(batch, model.nhid, dtype=torch.float64)
    params = _params(model) | extra
    model.zero_grad()
    logp, h_last, _ = model(words, h0)
    loss = torch.nn.functional.nll_loss(logp.view(-1, vocab), targets.view(-1))
    loss.backward()

    def run(values):
        ws = [values[f"w{i + 1}"] for i in range(len(model.cell.ws))]
        return np_forward(words.numpy(), h0.numpy(), values["emb"], values["bias"], values["w0"], ws, values)

    base = _np(params)
    ref_logp, ref_h = run(base)
    np.testing.assert_allclose(logp.detach().numpy(), ref_logp, rtol=0, atol=1e-10)
    np.testing.assert_allclose(h_last.detach().numpy(), ref_h, rtol=0, atol=1e-10)
    assert abs(loss.item() - _nll(ref_logp, targets.numpy())) < 1e-10
    eps = 1e-6
    for name, p in params.items():
        numeric = np.zeros(p.shape)
        for idx in np.ndindex(*p.shape):
            for sign in (1, -1):
                values = {k: v.copy() for k, v in base.items()}
                values[name][idx] += sign * eps
                numeric[idx] += sign * _nll(run(values)[0], targets.numpy()) / (2 * eps)
        np.testing.assert_allclose(p.grad.numpy(), numeric, rtol=0, atol=1e-7, err_msg=name)


def test_the_search_network_follows_the_papers_equations_forward_and_backward():
    torch.manual_seed(3)
    model = RNNSearchNetwork(7, ninp=3, nhid=3, nodes=3, dropout=0, dropouth=0, dropoutx=0, dropouti=0).double()
    with torch.no_grad():
        model.alphas.normal_(0, 1)  # far from uniform, so a wrong op weight shows
        model.decoder.bias.normal_(0, 0.1)
    model.train()  # batch norm with the batch's statistics, as during search; every dropout is 0

    def forward(words, h, emb, bias, w0, ws, values):
        return np_search_lm(words, h, emb, bias, w0, ws, values["alphas"])

    _check_forward_and_gradient(model, forward, {"alphas": model.alphas})


def test_the_evaluation_network_follows_its_genotype_forward_and_backward():
    genotype = Genotype([("relu", 0), ("sigmoid", 1), ("identity", 1), ("tanh", 2)], [2, 3, 4])
    torch.manual_seed(4)
    model = RNNModel(6, genotype, ninp=3, nhid=3).double().eval()  # eval: the dropouts are off
    with torch.no_grad():
        for w in [model.cell.w0, *model.cell.ws]:
            w.normal_(0, 0.7)  # large enough that every nonlinearity bends
        model.decoder.bias.normal_(0, 0.1)

    def forward(words, h, emb, bias, w0, ws, values):
        return np_genotype_lm(words, h, emb, bias, w0, ws, genotype)

    _check_forward_and_gradient(model, forward, {})


def test_the_search_cell_has_no_batch_norm_after_search_and_the_evaluation_cell_none_at_all():
    search = RNNSearchNetwork(5, ninp=4, nhid=4, nodes=2)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in search.modules())
    final = RNNModel(5, KNOWN_GENOTYPES["DARTS_RNN"], ninp=4, nhid=4)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in final.modules())
    assert final.decoder.weight is final.encoder.weight
    assert {id(p) for p in search.weight_parameters()} | {id(search.alphas)} == {id(p) for p in search.parameters()}
    assert id(search.alphas) not in {id(p) for p in search.weight_parameters()}


# ---------------------------------------------------------------- sizes

def test_the_evaluation_network_of_darts_rnn_has_the_papers_23m_parameters():
    model = RNNModel(10_000, KNOWN_GENOTYPES["DARTS_RNN"], ninp=850, nhid=850)
    count = sum(p.numel() for p in model.parameters())  # the tied decoder weight counts once
    # embedding 10,000 x 850, decoder bias 10,000, W_0 1,700 x 1,700, eight W_n 850 x 1,700
    assert count == 10_000 * 850 + 10_000 + 1_700 * 1_700 + 8 * 850 * 1_700 == 22_960_000
    assert round(count / 1e6) == 23


@pytest.mark.parametrize("args, message", [
    ((10, 8, 8, 0), "bptt must be an integer in 1..4096, got 0"),
    ((10, 8, 8, 10_000), "bptt must be an integer in 1..4096"),
    ((10, 0, 0), "emsize must be an integer in 1..8192, got 0"),
    ((10, 8, 9), r"emsize \(8\) must equal nhid \(9\)"),
    ((10, 8, 100_000), "nhid must be an integer in 1..8192"),
    ((0, 8, 8), "vocab must be an integer in 1..1000000, got 0"),
    ((1_000_000, 8192, 8192), "needs .* GiB for the embedding alone"),
])
def test_sizes_out_of_range_are_named(args, message):
    with pytest.raises(ValueError, match=message):
        check_sizes(*args)


def test_a_bad_dropout_is_named():
    with pytest.raises(ValueError, match="dropoutx must be in"):
        RNNSearchNetwork(10, 4, 4, nodes=2, dropoutx=1.0)


# ---------------------------------------------------------------- the bilevel step

def _tiny(vocab=6, seed=5, **kw):
    from engine.nn.rnn_supernet import RNNSearchNetwork as Net
    torch.manual_seed(seed)
    model = Net(vocab, ninp=3, nhid=3, nodes=2, dropout=0, dropouth=0, dropoutx=0, dropouti=0, **kw).double()
    with torch.no_grad():
        model.alphas.normal_(0, 1)
    return model


def _batches(vocab, steps=3, batch=4, seed=6):
    g = torch.Generator().manual_seed(seed)
    words = torch.randint(0, vocab, (steps + 1, batch), generator=g)
    return words[:-1], words[1:]


def test_a_first_order_step_moves_the_alphas_on_valid_then_the_weights_on_train():
    import copy

    from engine.search.rnn_step import bilevel_step, make_optimizers
    model = _tiny()
    before = copy.deepcopy(model)
    train, valid = _batches(6, seed=7), _batches(6, seed=8)
    h_train, h_valid = 0.1 * torch.ones(4, 3, dtype=torch.float64), torch.zeros(4, 3, dtype=torch.float64)
    w_opt, a_opt = make_optimizers(model, w_lr=0.5, w_decay=1e-3, a_lr=0.01, a_decay=1e-3)
    out = bilevel_step(model, w_opt, a_opt, train, valid, h_train, h_valid, clip=1e9, beta=0.0, bptt=6)

    # Alphas: Adam's first step on grad L_valid(w, alpha) + decay * alpha is lr * g / (|g| + eps).
    ref = copy.deepcopy(before).train()
    log_prob = ref(valid[0], h_valid)[0]
    loss_v = torch.nn.functional.nll_loss(log_prob.reshape(-1, 6), valid[1].reshape(-1))
    (g,) = torch.autograd.grad(loss_v, ref.alphas)
    g = g + 1e-3 * ref.alphas.detach()
    torch.testing.assert_close(model.alphas.detach(), ref.alphas.detach() - 0.01 * g / (g.abs() + 1e-8))
    assert out.valid_loss == pytest.approx(loss_v.item(), abs=1e-12)
    # Weights: plain SGD at the new alphas, lr scaled by 3 / 6 for a 3-row batch of a 6-row BPTT.
    with torch.no_grad():
        ref.alphas.copy_(model.alphas)
    loss_t = torch.nn.functional.nll_loss(ref(train[0], h_train)[0].reshape(-1, 6), train[1].reshape(-1))
    grads = torch.autograd.grad(loss_t, ref.weight_parameters())
    for p, p0, gw in zip(model.weight_parameters(), ref.weight_parameters(), grads, strict=True):
        torch.testing.assert_close(p.detach(), p0.detach() - 0.25 * (gw + 1e-3 * p0.detach()))
    assert w_opt.param_groups[0]["lr"] == 0.5  # the scaled rate was for this step only
    assert out.train_loss == pytest.approx(loss_t.item(), abs=1e-12) and not out.hidden_train.requires_grad


def test_the_second_order_alpha_gradient_is_the_unrolled_losss_derivative():
    import copy

    from engine.search.rnn_step import bilevel_step
    model = _tiny()
    train, valid = _batches(6, seed=9), _batches(6, seed=10)
    h_train, h_valid = 0.2 * torch.ones(4, 3, dtype=torch.float64), -0.1 * torch.ones(4, 3, dtype=torch.float64)
    eta = 0.3
    names = [n for n, _ in model.named_parameters() if n != "alphas"]
    w0 = {n: p.detach().clone() for n, p in model.named_parameters() if n != "alphas"}

    def unrolled_valid_loss(alphas):
        # L_valid(w - eta grad_w L_train(w, alpha), alpha): the paper's eq. 6, written out with autograd.
        params = {n: w.clone().requires_grad_() for n, w in w0.items()}
        out = torch.func.functional_call(model, params | {"alphas": alphas}, (train[0], h_train))[0]
        loss = torch.nn.functional.nll_loss(out.reshape(-1, 6), train[1].reshape(-1))
        grads = torch.autograd.grad(loss, [params[n] for n in names])
        moved = {n: w0[n] - eta * g for n, g in zip(names, grads, strict=True)}
        out = torch.func.functional_call(model, moved | {"alphas": alphas}, (valid[0], h_valid))[0]
        return torch.nn.functional.nll_loss(out.reshape(-1, 6), valid[1].reshape(-1)).item()

    a0 = model.alphas.detach().clone()
    state = copy.deepcopy(model.state_dict())
    numeric = torch.zeros_like(a0)
    for idx in np.ndindex(*a0.shape):
        for sign in (1, -1):
            a = a0.clone()
            a[idx] += sign * 1e-6
            numeric[idx] += sign * unrolled_valid_loss(a) / 2e-6

    def step_gradient(**kwargs):
        model.load_state_dict(state)
        w_opt = torch.optim.SGD(model.weight_parameters(), lr=eta)
        a_opt = torch.optim.SGD(model.arch_parameters(), lr=1.0)  # alpha' = alpha - d_alpha
        bilevel_step(model, w_opt, a_opt, train, valid, h_train, h_valid, clip=1e9, beta=0.0, **kwargs)
        return (a0 - model.alphas.detach()).numpy()

    # The Hessian-vector term is a central difference (eq. 8): with a small radius it is the derivative to
    # rounding; at the paper's radius (0.01) it is off by its O(r^2) term, which shrinks with the radius.
    exact = step_gradient(second_order=True, hvp_r=1e-5)
    np.testing.assert_allclose(exact, numeric.numpy(), rtol=0, atol=1e-8)
    paper = step_gradient(second_order=True)
    assert 1e-8 < np.abs(paper - numeric.numpy()).max() < np.abs(step_gradient(second_order=True, hvp_r=0.1)
                                                                  - numeric.numpy()).max()
    first = step_gradient()  # the first-order gradient misses the unrolled step's term
    assert np.abs(first - numeric.numpy()).max() > 100 * np.abs(exact - numeric.numpy()).max()


@pytest.mark.parametrize("kwargs, message", [({"clip": 0.0}, "clip must be positive"),
                                             ({"beta": -1.0}, "beta must be >= 0")])
def test_bad_step_settings_are_named(kwargs, message):
    from engine.search.rnn_step import bilevel_step, make_optimizers
    model = _tiny()
    with pytest.raises(ValueError, match=message):
        bilevel_step(model, *make_optimizers(model), _batches(6), _batches(6), torch.zeros(4, 3), torch.zeros(4, 3),
                     **kwargs)
    with pytest.raises(ValueError, match="w_lr must be positive"):
        make_optimizers(model, w_lr=0)


def test_evaluation_carries_the_hidden_state_across_bptt_windows():
    from engine.search.rnn_step import evaluate
    model = _tiny(vocab=6)
    source = torch.randint(0, 6, (13, 3), generator=torch.Generator().manual_seed(11))
    whole, windows = evaluate(model, source, 12), evaluate(model, source, 5)
    assert whole == pytest.approx(windows, abs=1e-12) and np.isfinite(whole) and not model.training
    log_prob = model(source[:-1], model.init_hidden(3))[0]
    expected = torch.nn.functional.nll_loss(log_prob.reshape(-1, 6), source[1:].reshape(-1)).item()
    assert whole == pytest.approx(expected, abs=1e-12)


def test_a_few_first_order_steps_on_the_embedded_corpus():
    from engine.datasets.corpus import batchify, get_batch, load_corpus
    from engine.nn.rnn_supernet import RNNSearchNetwork as Net
    from engine.search.rnn_step import bilevel_step, make_optimizers
    torch.manual_seed(0)
    corpus = load_corpus(max_vocab=200)
    train, valid = batchify(corpus.train[:2000], 4), batchify(corpus.valid[:500], 4)
    model = Net(corpus.vocab_size, ninp=8, nhid=8)
    alphas = model.alphas.detach().clone()
    w_opt, a_opt = make_optimizers(model)
    h_train, h_valid = model.init_hidden(4), model.init_hidden(4)
    for k in range(3):
        out = bilevel_step(model, w_opt, a_opt, get_batch(train, 5 * k, 5), get_batch(valid, 5 * k, 5), h_train,
                           h_valid, bptt=5)
        h_train, h_valid = out.hidden_train, out.hidden_valid
        assert np.isfinite([out.train_loss, out.valid_loss, out.grad_norm]).all()
    assert not torch.equal(model.alphas.detach(), alphas) and h_train.shape == (4, 8)
    assert len(model.genotype().recurrent) == 8


# ---------------------------------------------------------------- the config

def test_the_presets_are_the_papers_search_and_a_demo():
    from engine.search.rnn_config import RNN_PRESETS, RNNSearchConfig, from_rnn_preset
    paper = RNN_PRESETS["rnn-paper"]
    assert (paper.emsize, paper.nhid, paper.bptt, paper.batch_size, paper.epochs) == (300, 300, 35, 256, 50)
    assert (paper.w_lr, paper.a_lr, paper.a_weight_decay, paper.order) == (20.0, 3e-3, 1e-3, "second")
    assert (paper.dropout, paper.dropouth, paper.dropoutx, paper.dropouti) == (0.75, 0.25, 0.75, 0.2)
    assert RNN_PRESETS["rnn-paper-first-order"].order == "first"
    demo = from_rnn_preset("rnn-demo", bptt=10)
    assert demo.bptt == 10 and demo.nhid == 32 and demo.corpus == "embedded"
    assert RNNSearchConfig.from_dict(demo.to_dict()) == demo


@pytest.mark.parametrize("changes, field", [
    ({"bptt": 0}, "bptt"), ({"bptt": 10_000}, "bptt"), ({"nhid": 0, "emsize": 0}, "emsize"),
    ({"nhid": 100_000, "emsize": 100_000}, "emsize"), ({"nhid": 64}, "emsize"), ({"max_vocab": 2}, "max_vocab"),
    ({"order": "third"}, "order"), ({"dropoutx": 1.0}, "dropoutx"), ({"w_lr": float("nan")}, "w_lr"),
    ({"corpus": " "}, "corpus"), ({"nodes": 0}, "nodes"), ({"seed": -1}, "seed"),
])
def test_a_bad_config_field_is_named(changes, field):
    from engine.core.config import ConfigError
    from engine.search.rnn_config import from_rnn_preset
    with pytest.raises(ConfigError, match=f"^{field}=") as err:
        from_rnn_preset("rnn-demo", **changes)
    assert err.value.field == field and "\n" not in str(err.value)


def test_set_overrides_are_typed_for_the_rnn_config():
    from engine.core.config import ConfigError, parse_overrides
    from engine.search.rnn_config import RNNSearchConfig, from_rnn_preset
    overrides = parse_overrides(["bptt=12", "order=second", "w_lr=5", "corpus=/data/ptb"], RNNSearchConfig)
    cfg = from_rnn_preset("rnn-demo", **overrides)
    assert (cfg.bptt, cfg.order, cfg.w_lr, cfg.corpus) == (12, "second", 5.0, "/data/ptb")
    with pytest.raises(ConfigError, match="^bpt=.*unknown field"):
        from_rnn_preset("rnn-demo", bpt=3)
    with pytest.raises(ConfigError, match="^preset='rnn-huge'"):
        from_rnn_preset("rnn-huge")


# ---------------------------------------------------------------- the search job

def _job_config(tmp_path, **changes):
    from engine.search.rnn_config import from_rnn_preset
    rng = np.random.default_rng(12)
    words = [f"w{k}" for k in range(25)]
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    for split, lines in (("train", 40), ("valid", 12), ("test", 4)):
        text = "\n".join(" ".join(rng.choice(words, size=6)) for _ in range(lines)) + "\n"
        (corpus / f"{split}.txt").write_text(text)
    base = dict(corpus=str(corpus), max_vocab=30, emsize=8, nhid=8, nodes=3, bptt=6, batch_size=4, epochs=2,
                checkpoint_every_s=1e9, log_every=1, device="cpu")
    return from_rnn_preset("rnn-demo", **(base | changes))


def test_the_search_job_runs_and_a_stopped_run_resumes_to_the_same_alphas(tmp_path):
    from engine.core.atomic import read_jsonl
    from engine.runs import rundir
    from engine.runs.control import Control
    from engine.runs.snapshot import SnapshotBox
    from engine.search.rnn_loop import run_rnn_search
    cfg = _job_config(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    assert run_rnn_search(cfg, full) == "finished"
    # rundir.read_alphas keeps the convolutional cell's rows only (normal and reduce): read the lines themselves
    alphas, genotypes = read_jsonl(full / rundir.ALPHAS), rundir.read_genotypes(full)
    steps_per_epoch = rundir.read_config(full)["steps_per_epoch"]
    assert steps_per_epoch > 3 and [r["step"] for r in alphas] == list(range(1, 2 * steps_per_epoch + 1))
    assert [g["kind"] for g in genotypes] == ["epoch_end", "final"]
    assert Genotype.from_dict(genotypes[-1]["genotype"]) == derive_genotype(np.array(alphas[-1]["recurrent"]))
    ends = [m for m in rundir.read_metrics(full) if "epoch_valid_ppl" in m]
    assert [m["step"] for m in ends] == [steps_per_epoch, 2 * steps_per_epoch]
    assert all(m["epoch_valid_ppl"] == pytest.approx(np.exp(m["epoch_valid_loss"])) for m in ends)

    part = tmp_path / "part"
    part.mkdir()
    control = Control()
    stop_at = steps_per_epoch + 2  # mid-epoch: the hidden state must come back from the checkpoint
    assert run_rnn_search(cfg, part, control=control, callbacks=[StopAt(stop_at, control)]) == "stopped"
    assert rundir.read_genotypes(part)[-1]["kind"] == "stopped"
    assert run_rnn_search(cfg, part, resume=True) == "finished"
    resumed = read_jsonl(part / rundir.ALPHAS)
    assert [r["step"] for r in resumed] == [r["step"] for r in alphas]  # no step lost, none repeated
    assert resumed[-1]["recurrent"] == alphas[-1]["recurrent"]  # the same run: every dropout mask and batch
    ma, mb = rundir.read_metrics(full), rundir.read_metrics(part)
    assert [m["train_loss"] for m in ma] == [m["train_loss"] for m in mb]

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    control = Control()
    run_rnn_search(cfg, wrong, control=control, callbacks=[StopAt(2, control)])
    box = SnapshotBox()
    assert run_rnn_search(cfg.replace(nhid=16, emsize=16), wrong, resume=True, box=box) == "failed"
    assert box.get().error.startswith("emsize=16 is not valid: 8, as the run was searched with")
    assert rundir.read_status(wrong)["state"] == "stopped"  # a refused resume leaves the run as it was


def test_a_bad_corpus_fails_the_job_with_the_field_named(tmp_path):
    from engine.runs.snapshot import SnapshotBox
    from engine.search.rnn_loop import run_rnn_search
    cfg = _job_config(tmp_path, corpus=str(tmp_path / "nowhere"))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    box = SnapshotBox()
    assert run_rnn_search(cfg, run_dir, box=box) == "failed"
    assert box.get().error.startswith("corpus=") and "does not exist" in box.get().error
    cfg = _job_config(tmp_path, batch_size=1000)
    run_dir.mkdir(exist_ok=True)
    assert run_rnn_search(cfg, run_dir, box=box) == "failed" and box.get().error.startswith("batch_size=1000")
