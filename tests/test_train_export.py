"""A trained model leaves the project: checkpoint (weights_only), torch.export (.pt2), ONNX and TorchScript, each
run without our code."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from engine.runs import rundir
from engine.space.cnn.genotype import KNOWN_GENOTYPES
from engine.train.config import TRAIN_PRESETS
from engine.train.export import MODEL_FORMAT, load_model, write_model_export
from engine.train.loop import run_training

V2 = KNOWN_GENOTYPES["DARTS_V2"]
# auxiliary head and drop path on in training, so the test shows both are gone from the exported graphs
CFG = TRAIN_PRESETS["train-smoke"].replace(image_size=32, auxiliary_weight=0.4, epochs=1, subset=16, test_subset=8)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "train"
    run.mkdir()
    assert run_training(CFG, V2, run, source={"kind": "known", "label": "DARTS_V2"}) == "finished"
    return run


def _batch() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((5, 3, 32, 32)).astype(np.float32))


def _isolated(tmp_path, code: str) -> np.ndarray:
    """Run `code` in a fresh interpreter that cannot import this project (-I, cwd outside the repository)."""
    np.save(tmp_path / "x.npy", _batch().numpy())
    guard = "import importlib.util, sys\nassert importlib.util.find_spec('engine') is None, sys.path\n"
    script = guard + textwrap.dedent(code)
    p = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return np.load(tmp_path / "y.npy")


def test_checkpoint_export_describes_itself_and_loads_with_weights_only(trained):
    path = write_model_export(trained, "checkpoint")
    assert path.parent == (trained / "exports").resolve()
    record = torch.load(path, weights_only=True)
    assert record["format"] == MODEL_FORMAT and record["genotype"] == V2.to_dict()
    assert record["config"]["init_channels"] == CFG.init_channels and record["num_classes"] == 4
    assert not any(k.startswith("auxiliary") for k in record["state_dict"])
    model = load_model(path)
    trained_weights = torch.load(trained / rundir.CHECKPOINT, weights_only=True)["model"]
    for k, v in model.state_dict().items():
        assert torch.equal(v, trained_weights[k])


def test_pt2_runs_without_the_project_at_any_batch_size(trained, tmp_path):
    path = write_model_export(trained, "pt2")
    assert path.name == "model.pt2"
    y = _isolated(tmp_path, f"""
        import numpy as np, torch
        m = torch.export.load({str(path)!r}).module()
        x = torch.from_numpy(np.load("x.npy"))
        one = m(x[:1]).detach().numpy()   # the batch dimension is dynamic, down to one image
        y = m(x).detach().numpy()
        assert np.allclose(one, y[:1], atol=1e-5), (one, y[:1])
        np.save("y.npy", y)
        """)
    with torch.no_grad():
        expected = load_model(write_model_export(trained, "checkpoint"))(_batch())[0].numpy()
    assert y.shape == (5, 4)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=0)


def test_torchscript_runs_without_the_project_and_says_it_is_deprecated(trained, tmp_path):
    with pytest.warns(FutureWarning, match="deprecated"):  # PyTorch's own warning is no longer hidden
        path = write_model_export(trained, "torchscript")
    y = _isolated(tmp_path, f"""
        import numpy as np, torch
        m = torch.jit.load({str(path)!r})
        np.save("y.npy", m(torch.from_numpy(np.load("x.npy"))).detach().numpy())
        """)
    with torch.no_grad():
        expected = load_model(write_model_export(trained, "checkpoint"))(_batch())[0].numpy()
    assert y.shape == (5, 4)
    np.testing.assert_allclose(y, expected, atol=1e-5, rtol=0)


def test_onnx_runs_in_onnxruntime_without_the_project(trained, tmp_path, recwarn):
    pytest.importorskip("onnxruntime")
    path = write_model_export(trained, "onnx", out="exports/custom.onnx")
    assert path.name == "custom.onnx"
    assert not [w for w in recwarn if "deprecat" in str(w.message).lower()]  # the dynamo exporter, not the old one
    y = _isolated(tmp_path, f"""
        import numpy as np, onnxruntime as ort
        s = ort.InferenceSession({str(path)!r}, providers=["CPUExecutionProvider"])
        assert s.get_inputs()[0].shape[0] == "batch", s.get_inputs()[0].shape  # a dynamic batch dimension
        x = np.load("x.npy")
        one = s.run(["logits"], {{"input": x[:1]}})[0]
        y = s.run(["logits"], {{"input": x}})[0]
        assert np.allclose(one, y[:1], atol=1e-4)
        np.save("y.npy", y)
        """)
    with torch.no_grad():
        expected = load_model(write_model_export(trained, "checkpoint"))(_batch())[0].numpy()
    np.testing.assert_allclose(y, expected, atol=1e-4, rtol=0)


def test_model_exports_stay_inside_the_run_and_refuse_a_search(trained, tmp_path):
    with pytest.raises(ValueError, match="outside the run directory"):
        write_model_export(trained, "checkpoint", out="../escape.pt")
    with pytest.raises(ValueError, match="run's own files"):
        write_model_export(trained, "checkpoint", out="checkpoint.pt")
    search = tmp_path / "search"
    search.mkdir()
    (search / rundir.CONFIG).write_text('{"kind": "search", "config": {}}')
    with pytest.raises(ValueError, match="training run"):
        write_model_export(search, "onnx")
