"""The recurrent DARTS networks' shared parts and the evaluation network a genotype builds (torch).

A language model as in the paper (section 3.2, Appendix A.2.2) and quark0/darts rnn/model.py: an embedding, one
recurrent cell unrolled over the sequence, and a decoder tied to the embedding. Each step the cell computes

    s_0 = h_{t-1} + c_0 * (tanh(h'_0) - h_{t-1}),   [c_0 | h'_0] = [x_t | h_{t-1}] W_0,  c_0 = sigmoid(.)
    s_n = s_j + c_n * (f_n(h'_n) - s_j),            [c_n | h'_n] = s_j W_n,            c_n = sigmoid(.)

for node n fed by state j through op f_n, and h_t is the mean of the `concat` states. Dropout follows the
reference: variational (one mask per sequence) on x_t and on every state fed to a W, locked dropout on the
embedded input and on the output, and embedding dropout that drops whole words.

docs/darts.md, section 6, has the settings, their sources and the parameter count the tests check.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from engine.space.rnn.config import MAX_BPTT, MAX_HIDDEN, MAX_VOCAB
from engine.space.rnn.genotype import Genotype

__all__ = ["INIT_RANGE", "ACTIVATIONS", "check_sizes", "RecurrentCell", "LanguageModel", "RNNModel"]

INIT_RANGE = 0.04  # the reference's uniform init range for every weight matrix, embedding and decoder
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return None


def check_sizes(ntoken: int, ninp: int, nhid: int, bptt: int | None = None) -> None:
    """A one-line ValueError naming the field for a size no network of this kind can have or this machine hold."""
    for name, value, top in (("vocab", ntoken, MAX_VOCAB), ("emsize", ninp, MAX_HIDDEN), ("nhid", nhid, MAX_HIDDEN)):
        if type(value) is not int or not 1 <= value <= top:
            raise ValueError(f"{name} must be an integer in 1..{top}, got {value!r}")
    if bptt is not None and (type(bptt) is not int or not 1 <= bptt <= MAX_BPTT):
        raise ValueError(f"bptt must be an integer in 1..{MAX_BPTT}, got {bptt!r}")
    if ninp != nhid:
        raise ValueError(f"emsize ({ninp}) must equal nhid ({nhid}): the decoder is tied to the embedding")
    # The tied embedding, its gradient and an optimiser's state: three float32 copies at least.
    need, have = 3 * 4 * ntoken * ninp, _memory_bytes()
    if have is not None and need > have:
        raise ValueError(f"vocab {ntoken} x emsize {ninp} needs {need / 2**30:.1f} GiB for the embedding alone; "
                         f"this machine has {have / 2**30:.1f} GiB")


def variational_mask(batch: int, size: int, keep: float, like: torch.Tensor) -> torch.Tensor:
    """A (batch, size) mask of 0 and 1/keep, drawn once per sequence (the reference's mask2d)."""
    return torch.floor(torch.rand(batch, size, dtype=like.dtype, device=like.device) + keep) / keep


class RecurrentCell(nn.Module):
    """W_0 and one W per node; `forward` unrolls `step` (a subclass's) over the sequence."""

    def __init__(self, ninp: int, nhid: int, nodes: int, dropouth: float, dropoutx: float) -> None:
        super().__init__()
        self.nhid, self.nodes, self.dropouth, self.dropoutx = nhid, nodes, dropouth, dropoutx
        self.w0 = nn.Parameter(torch.empty(ninp + nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE))
        self.ws = nn.ParameterList(
            [nn.Parameter(torch.empty(nhid, 2 * nhid).uniform_(-INIT_RANGE, INIT_RANGE)) for _ in range(nodes)])

    def forward(self, inputs: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """inputs (T, B, ninp), hidden (B, nhid) -> every step's h_t, (T, B, nhid)."""
        batch = inputs.size(1)
        if self.training:
            x_mask = variational_mask(batch, inputs.size(2), 1.0 - self.dropoutx, inputs)
            h_mask = variational_mask(batch, self.nhid, 1.0 - self.dropouth, inputs)
        else:
            x_mask = h_mask = None
        out = []
        for x in inputs:
            hidden = self.step(x, hidden, x_mask, h_mask)
            out.append(hidden)
        return torch.stack(out)

    def first_state(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None,
                    h_mask: torch.Tensor | None) -> torch.Tensor:
        xh = torch.cat([x, h_prev] if x_mask is None else [x * x_mask, h_prev * h_mask], dim=-1)
        c0, h0 = torch.split(xh @ self.w0, self.nhid, dim=-1)
        return h_prev + torch.sigmoid(c0) * (torch.tanh(h0) - h_prev)

    def step(self, x: torch.Tensor, h_prev: torch.Tensor, x_mask: torch.Tensor | None,
             h_mask: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError


class GenotypeCell(RecurrentCell):
    """The cell of a genotype: node n takes one state through one op."""

    def __init__(self, ninp: int, nhid: int, genotype: Genotype, dropouth: float, dropoutx: float) -> None:
        super().__init__(ninp, nhid, genotype.nodes, dropouth, dropoutx)
        self.genotype = genotype

    def step(self, x, h_prev, x_mask, h_mask):
        states = [self.first_state(x, h_prev, x_mask, h_mask)]
        for w, (op, j) in zip(self.ws, self.genotype.recurrent, strict=True):
            s_prev = states[j]
            c, h = torch.split((s_prev if h_mask is None else s_prev * h_mask) @ w, self.nhid, dim=-1)
            states.append(s_prev + torch.sigmoid(c) * (ACTIVATIONS[op](h) - s_prev))
        return torch.stack([states[i] for i in self.genotype.concat]).mean(0)


class LanguageModel(nn.Module):
    """Embedding, a recurrent cell, a decoder tied to the embedding; log-probabilities of the next word."""

    def __init__(self, ntoken: int, ninp: int, nhid: int, cell: RecurrentCell, dropout: float, dropouti: float,
                 dropoute: float) -> None:
        super().__init__()
        check_sizes(ntoken, ninp, nhid)
        for name, p in (("dropout", dropout), ("dropouth", cell.dropouth), ("dropoutx", cell.dropoutx),
                        ("dropouti", dropouti), ("dropoute", dropoute)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p!r}")
        self.ntoken, self.ninp, self.nhid = ntoken, ninp, nhid
        self.dropout, self.dropouti, self.dropoute = dropout, dropouti, dropoute
        self.encoder = nn.Embedding(ntoken, ninp)
        self.cell = cell
        self.decoder = nn.Linear(nhid, ntoken)
        self.decoder.weight = self.encoder.weight  # tied (Press & Wolf 2017), as the reference
        nn.init.uniform_(self.encoder.weight, -INIT_RANGE, INIT_RANGE)
        nn.init.zeros_(self.decoder.bias)

    def init_hidden(self, batch: int) -> torch.Tensor:
        return self.encoder.weight.new_zeros(batch, self.nhid)

    def _locked_dropout(self, x: torch.Tensor, p: float) -> torch.Tensor:
        if not self.training or not p:
            return x
        return x * variational_mask(x.size(1), x.size(2), 1.0 - p, x).unsqueeze(0)

    def _embed(self, words: torch.Tensor) -> torch.Tensor:
        weight = self.encoder.weight
        if self.training and self.dropoute:
            # Drops whole words for the sequence: one row mask over the vocabulary (Gal & Ghahramani 2016).
            weight = weight * variational_mask(weight.size(0), 1, 1.0 - self.dropoute, weight)
        return F.embedding(words, weight)

    def forward(self, words: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """words (T, B) -> log-probabilities (T, B, ntoken), the last hidden state (B, nhid) and the cell's raw
        outputs (T, B, nhid), which the temporal activation regularisation reads."""
        emb = self._locked_dropout(self._embed(words), self.dropouti)
        raw = self.cell(emb, hidden)
        out = self._locked_dropout(raw, self.dropout)
        return F.log_softmax(self.decoder(out), dim=-1), raw[-1], raw


class RNNModel(LanguageModel):
    """The evaluation network of a genotype (paper Appendix A.2.2; quark0/darts rnn/train.py's defaults)."""

    def __init__(self, ntoken: int, genotype: Genotype, ninp: int = 850, nhid: int = 850, dropout: float = 0.75,
                 dropouth: float = 0.25, dropoutx: float = 0.75, dropouti: float = 0.2, dropoute: float = 0.1) -> None:
        check_sizes(ntoken, ninp, nhid)
        super().__init__(ntoken, ninp, nhid, GenotypeCell(ninp, nhid, genotype, dropouth, dropoutx), dropout,
                         dropouti, dropoute)
        self.genotype = genotype
