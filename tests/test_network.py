"""Networks built from a genotype: the paper's parameter counts, mult-adds, forward, drop path, aux heads."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from engine.nn.network import (
    AuxiliaryHeadCIFAR,
    AuxiliaryHeadImageNet,
    EvalCell,
    NetworkCIFAR,
    NetworkImageNet,
    count_cifar_parameters,
    count_multiply_adds,
    count_parameters,
    drop_path,
)
from engine.space.cnn.genotype import KNOWN_GENOTYPES, Genotype

V1, V2 = KNOWN_GENOTYPES["DARTS_V1"], KNOWN_GENOTYPES["DARTS_V2"]


def test_parameter_counts_match_the_paper():
    net = NetworkCIFAR(36, 10, 20, True, V2)
    assert count_parameters(net) == 3_349_342
    assert sum(p.numel() for p in net.parameters()) == 3_825_768  # with the auxiliary head
    assert count_parameters(NetworkCIFAR(36, 10, 20, True, V1)) == 3_169_414
    assert count_parameters(NetworkCIFAR(36, 10, 20, False, V2)) == 3_349_342
    assert count_parameters(NetworkImageNet(48, 1000, 14, True, V2)) == 4_718_752


@pytest.mark.parametrize("name", ["DARTS_V1", "DARTS_V2", "PC_DARTS", "PDARTS"])
@pytest.mark.parametrize("C, classes, layers, in_channels", [(36, 10, 20, 3), (16, 7, 8, 1), (8, 100, 5, 3)])
def test_counting_cell_by_cell_matches_the_built_network(name, C, classes, layers, in_channels):
    genotype = KNOWN_GENOTYPES[name]
    built = count_parameters(NetworkCIFAR(C, classes, layers, False, genotype, in_channels=in_channels))
    assert count_cifar_parameters(C, classes, layers, genotype, in_channels) == built


def test_counting_follows_a_genotype_with_another_concat():
    genotype = Genotype.from_dict({**V2.to_dict(), "normal_concat": [2, 3, 4], "reduce_concat": [5]})
    built = count_parameters(NetworkCIFAR(16, 10, 8, False, genotype))
    assert count_cifar_parameters(16, 10, 8, genotype) == built
    assert count_cifar_parameters(16, 10, 8, genotype) != count_cifar_parameters(16, 10, 8, V2)


def test_multiply_adds_of_darts_v2_on_cifar():
    net = NetworkCIFAR(36, 10, 20, True, V2)
    net.train()
    madds = count_multiply_adds(net, (1, 3, 32, 32))
    assert madds == 528_359_040  # the paper's "528M"; the hand-written hook counter this replaced gave the same
    assert net.training  # the mode is restored
    small = NetworkCIFAR(8, 10, 5, True, V2)
    assert count_multiply_adds(small, (2, 3, 32, 32)) == count_multiply_adds(small, (1, 3, 32, 32))  # per sample


def test_forward_train_and_eval():
    torch.manual_seed(0)
    net = NetworkCIFAR(8, 10, 5, True, V2, drop_path_prob=0.2)
    x = torch.randn(2, 3, 32, 32)
    logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is not None and aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    net.eval()
    with torch.no_grad():
        logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is None


def test_grey_28x28_input_without_auxiliary_and_a_clear_error_with_it():
    logits, _ = NetworkCIFAR(8, 10, 5, False, V2, in_channels=1)(torch.randn(2, 1, 28, 28))
    assert logits.shape == (2, 10)
    with pytest.raises(ValueError, match="auxiliary head needs a 2x2 map"):
        NetworkCIFAR(8, 10, 5, True, V2, in_channels=1)(torch.randn(2, 1, 28, 28))


def test_imagenet_tiny_forward_with_auxiliary():
    net = NetworkImageNet(8, 10, 3, True, V1)
    logits, aux = net(torch.randn(2, 3, 224, 224))  # cell 2 reduces to 7x7, where the aux head reads
    assert logits.shape == (2, 10) and aux.shape == (2, 10)
    assert isinstance(net.auxiliary_head, AuxiliaryHeadImageNet)


def test_auxiliary_heads_follow_the_reference():
    cifar, imagenet = AuxiliaryHeadCIFAR(576, 10), AuxiliaryHeadImageNet(576, 10)
    assert [type(m) for m in cifar.features] == [nn.ReLU, nn.AvgPool2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d,
                                                 nn.BatchNorm2d, nn.ReLU]
    assert [type(m) for m in imagenet.features] == [nn.ReLU, nn.AvgPool2d, nn.Conv2d, nn.BatchNorm2d, nn.ReLU,
                                                    nn.Conv2d, nn.ReLU]  # no BN after the 768 conv
    assert (cifar.features[1].stride, imagenet.features[1].stride) == (3, 2)
    assert not cifar.features[1].count_include_pad
    assert sum(p.numel() for p in cifar.parameters()) == 3_825_768 - 3_349_342


def test_reference_module_names():
    keys = NetworkCIFAR(8, 10, 5, True, V2).state_dict().keys()
    for key in ("stem.0.weight", "cells.0.preprocess0.op.1.weight", "cells.0._ops.0.op.1.weight",
                "cells.2.preprocess0.conv_1.weight", "auxiliary_head.features.2.weight", "classifier.weight"):
        assert key in keys
    assert all(isinstance(m, nn.BatchNorm2d) and m.affine for m in NetworkCIFAR(8, 10, 5, False, V2).modules()
               if isinstance(m, nn.BatchNorm2d))


def test_drop_path_drops_whole_samples():
    torch.manual_seed(0)
    out = drop_path(torch.ones(4000, 2, 3, 3), 0.25)
    per_sample = out.flatten(1)
    kept = per_sample[per_sample != 0]
    assert torch.allclose(kept, torch.full_like(kept, 1 / 0.75))  # survivors scaled to keep the mean
    assert (per_sample.min(1).values == per_sample.max(1).values).all()  # all or nothing per sample
    assert abs((per_sample[:, 0] == 0).float().mean().item() - 0.25) < 0.03


def _cell_outputs(genotype: Genotype, drop_prob: float, training: bool) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    cell = EvalCell(genotype, 8, 8, 4, reduction=False, reduction_prev=False).train(training)
    s0, s1 = torch.randn(16, 8, 6, 6), torch.randn(16, 8, 6, 6)
    with torch.no_grad():
        return cell(s0, s1, drop_prob), cell(s0, s1, drop_prob)


def test_drop_path_skips_identity_and_runs_in_training_only():
    skips = Genotype(normal=[("skip_connect", 0), ("skip_connect", 1)] * 4, normal_concat=[2, 3, 4, 5],
                     reduce=V2.reduce, reduce_concat=V2.reduce_concat)
    a, b = _cell_outputs(skips, 0.5, training=True)
    assert torch.equal(a, b)  # identity ops are never dropped
    a, b = _cell_outputs(V2, 0.5, training=True)
    assert not torch.equal(a, b)
    a, b = _cell_outputs(V2, 0.5, training=False)
    assert torch.equal(a, b)


def test_nodes_with_fewer_inputs_build_and_run():
    fair = Genotype(normal=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_3x3", 2), ("sep_conv_5x5", 1),
                            ("avg_pool_3x3", 3)], normal_concat=[2, 3, 5], normal_fanin=[2, 1, 0, 2],
                    reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1)], reduce_concat=[2])
    net = NetworkCIFAR(8, 10, 5, False, fair)
    assert [c.multiplier for c in net.cells] == [3, 1, 3, 1, 3]
    logits, _ = net(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 10)
    assert count_parameters(net) < count_parameters(NetworkCIFAR(8, 10, 5, False, V2))


def test_multiply_adds_count_convolutions_and_linear_layers_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 5))
    by_hand = 16 * 16 * 8 * (3 * 9) + 16 * 16 * 8 * 9 + 8 * 5  # conv, depthwise conv (1 input each), linear
    assert count_multiply_adds(model, (1, 3, 16, 16)) == by_hand
