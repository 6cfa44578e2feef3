#!/usr/bin/env python3
"""PyTorch interchange fixture for Tests/CNNTests/InteropTests.swift (issue 7).

Builds two small networks in PyTorch whose module names match swift-cnn's layers:

* ``resnet``: conv1-bn1-relu-maxpool, ``layer1`` = one torchvision-style BasicBlock with a
  projection shortcut (``downsample`` = 1x1 conv + batch norm), adaptive average pool, ``fc``;
* ``inception``: ``conv1`` (a BasicConv2d: conv without bias, batch norm with eps 0.001, ReLU),
  ``maxpool1`` (3x3/2, ceil mode), ``inception3a`` (torchvision's Inception module: four branches
  concatenated), adaptive average pool, dropout, ``fc``;

draws random weights and random batch-norm running statistics, and writes for each network

* ``<name>_state.safetensors``: the ``state_dict()`` (``num_batches_tracked`` as int64, as PyTorch
  keeps it), loadable by swift-cnn's ``Module.loadWeights(from:)``;
* ``<name>_io.safetensors``: ``input`` (NCHW float32) and ``logits``, the network's output in
  evaluation mode.

Usage (torch and safetensors from PyPI; torchvision is not needed)::

    python3 make_fixture.py                # regenerate the four files beside this script
    python3 make_fixture.py --check DIR    # the reverse direction, see below

The reverse direction: the Swift test writes the weights it loaded back out with
``Module.saveWeights(to:)``; with ``CNN_INTEROP_EXPORT=DIR`` set it also leaves them in DIR as
``<name>_swift.safetensors``. ``--check DIR`` then does, for each network::

    model.load_state_dict(safetensors.torch.load_file("DIR/<name>_swift.safetensors"))  # strict
    assert torch.equal(model(input), logits)  # bit-identical weights give the same logits

Seeded, so regeneration gives the same files for the same PyTorch version (generated with 2.13).
"""
import argparse
import os
import sys

import torch
from torch import nn
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = 5


class BasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock."""

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = self.downsample(x) if self.downsample is not None else x
        return self.relu(out + identity)


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        downsample = nn.Sequential(nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16))
        self.layer1 = nn.Sequential(BasicBlock(8, 16, stride=2, downsample=downsample))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, CLASSES)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


class BasicConv2d(nn.Module):
    """torchvision.models.googlenet.BasicConv2d."""

    def __init__(self, in_channels, out_channels, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))


class Inception(nn.Module):
    """torchvision.models.googlenet.Inception."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()
        self.branch1 = BasicConv2d(in_channels, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_channels, ch3x3red, kernel_size=1),
                                     BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(BasicConv2d(in_channels, ch5x5red, kernel_size=1),
                                     BasicConv2d(ch5x5red, ch5x5, kernel_size=3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),
                                     BasicConv2d(in_channels, pool_proj, kernel_size=1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class SmallInceptionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = BasicConv2d(3, 8, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(8, 4, 4, 8, 2, 4, 4)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(20, CLASSES)

    def forward(self, x):
        x = self.maxpool1(self.conv1(x))
        x = self.inception3a(x)
        return self.fc(self.dropout(torch.flatten(self.avgpool(x), 1)))


NETWORKS = {"resnet": SmallResNet, "inception": SmallInceptionNet}


def randomize(model, generator):
    """Random weights and batch-norm statistics, so that every tensor of the file matters."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.2)
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(c, generator=generator) * 1.5 + 0.25)
                module.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=generator)))
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                fan_in = module.weight[0].numel()
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator) * (2.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.2)


def generate():
    for index, (name, cls) in enumerate(NETWORKS.items()):
        generator = torch.Generator().manual_seed(1234 + index)
        model = cls().eval()
        randomize(model, generator)
        x = torch.randn(2, 3, 16, 16, generator=generator)
        with torch.no_grad():
            logits = model(x)
        state = {k: v.contiguous() for k, v in model.state_dict().items()}
        save_file(state, os.path.join(HERE, f"{name}_state.safetensors"), metadata={"generator": "make_fixture.py", "torch": torch.__version__})
        save_file({"input": x.contiguous(), "logits": logits.contiguous()}, os.path.join(HERE, f"{name}_io.safetensors"))
        print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, logits {tuple(logits.shape)}")


def check(directory):
    ok = True
    for name, cls in NETWORKS.items():
        model = cls().eval()
        model.load_state_dict(load_file(os.path.join(directory, f"{name}_swift.safetensors")))  # strict
        io = load_file(os.path.join(HERE, f"{name}_io.safetensors"))
        reference = cls().eval()
        reference.load_state_dict(load_file(os.path.join(HERE, f"{name}_state.safetensors")))
        with torch.no_grad():
            same = torch.equal(model(io["input"]), reference(io["input"]))
        print(f"{name}: swift-cnn's file loads strictly into PyTorch; logits {'identical' if same else 'DIFFER'}")
        ok = ok and same
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", metavar="DIR", help="load swift-cnn's <name>_swift.safetensors from DIR into PyTorch")
    args = parser.parse_args()
    if args.check:
        sys.exit(0 if check(args.check) else 1)
    generate()
