"""A trained recurrent language model leaves the project: checkpoint (weights_only), torch.export, TorchScript and
ONNX, each one word a call, run without our code; stepping the graph word by word gives what the network gives
for the whole sequence."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from engine.runs import rundir
from engine.space.rnn.genotype import KNOWN_GENOTYPES
from engine.space.rnn.train_config import from_rnn_train_preset
from engine.train.export import write_model_export
from engine.train.export_rnn import RNN_MODEL_FORMAT, VOCAB_FILE, OneStep, load_rnn_model

GENOTYPE = KNOWN_GENOTYPES["DARTS_RNN"]
TOKENS = [3, 7, 1, 4]   # one sequence, a word a step


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from engine.runtime.threads import apply_threads
    from engine.train.rnn_loop import run_rnn_training

    apply_threads(1)
    run = tmp_path_factory.mktemp("runs") / "rnn-train"
    run.mkdir()
    config = from_rnn_train_preset("rnn-train-smoke", {"epochs": 1})
    assert run_rnn_training(config, GENOTYPE, run, source={"kind": "known", "label": "DARTS_RNN"}) == "finished"
    return run


def _expected(model) -> np.ndarray:
    """The network's own log-probabilities over the whole sequence (batch 1), from a zero state."""
    with torch.no_grad():
        words = torch.tensor(TOKENS).unsqueeze(1)
        log_probs, _, _ = model(words, model.init_hidden(1))
    return log_probs[:, 0].numpy()


def _isolated(tmp_path, code: str) -> np.ndarray:
    """`code` in a fresh interpreter that cannot import this project; it defines step(tokens, hidden) and the
    guard below walks the sequence with it."""
    guard = "import importlib.util, sys\nassert importlib.util.find_spec('engine') is None, sys.path\n"
    walk = f"""
        out, h = [], np.zeros((1, NHID), dtype=np.float32)
        for t in {TOKENS}:
            lp, h = step(np.array([t], dtype=np.int64), h)
            out.append(lp[0])
        np.save("y.npy", np.stack(out))
        """
    p = subprocess.run([sys.executable, "-I", "-c", guard + textwrap.dedent(code) + textwrap.dedent(walk)],
                       cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return np.load(tmp_path / "y.npy")


def test_checkpoint_describes_itself_with_its_vocabulary(trained):
    path = write_model_export(trained, "checkpoint")
    record = torch.load(path, map_location="cpu", weights_only=True)
    assert record["format"] == RNN_MODEL_FORMAT and record["genotype"] == GENOTYPE.to_dict()
    vocab = (path.parent / VOCAB_FILE).read_text().splitlines()
    assert vocab == record["words"] and len(vocab) == record["state_dict"]["encoder.weight"].shape[0]
    model = load_rnn_model(path)
    # one step at a time through OneStep equals the sequence through the network
    step, h, out = OneStep(model).eval(), model.init_hidden(1), []
    with torch.no_grad():
        for t in TOKENS:
            lp, h = step(torch.tensor([t]), h)
            out.append(lp[0].numpy())
    np.testing.assert_allclose(np.stack(out), _expected(model), atol=1e-5, rtol=0)
    # the best weights by validation are the ones kept
    ckpt = torch.load(trained / rundir.CHECKPOINT, map_location="cpu", weights_only=True)
    assert all(torch.equal(record["state_dict"][k], v) for k, v in ckpt["best_model"].items())


@pytest.mark.parametrize("fmt, code", [
    ("pt2", """
        import numpy as np, torch
        m = torch.export.load(PATH).module()
        def step(t, h):
            lp, h = m(torch.from_numpy(t), torch.from_numpy(h))
            return lp.detach().numpy(), h.detach().numpy()
        two = m(torch.tensor([1, 2]), torch.zeros(2, NHID))[0]   # the batch dimension is dynamic
        assert two.shape[0] == 2
        """),
    ("torchscript", """
        import numpy as np, torch
        m = torch.jit.load(PATH)
        def step(t, h):
            lp, h = m(torch.from_numpy(t), torch.from_numpy(h))
            return lp.detach().numpy(), h.detach().numpy()
        """),
    ("onnx", """
        import numpy as np, onnxruntime as ort
        s = ort.InferenceSession(PATH, providers=["CPUExecutionProvider"])
        assert [i.name for i in s.get_inputs()] == ["tokens", "hidden"]
        def step(t, h):
            return s.run(["log_probs", "next_hidden"], {"tokens": t, "hidden": h})
        """),
])
def test_each_graph_reads_a_sentence_word_by_word_without_the_project(trained, tmp_path, fmt, code):
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
    path = write_model_export(trained, fmt)
    model = load_rnn_model(write_model_export(trained, "checkpoint"))
    code = f"PATH = {str(path)!r}\nNHID = {model.nhid}\n" + textwrap.dedent(code)
    np.testing.assert_allclose(_isolated(tmp_path, code), _expected(model), atol=1e-4, rtol=0)


def test_a_recurrent_search_is_not_a_model(tmp_path):
    (tmp_path / rundir.CONFIG).write_text('{"kind": "rnn_search", "config": {}}')
    with pytest.raises(ValueError, match="is a search run"):
        write_model_export(tmp_path, "pt2")
