#!/usr/bin/env python3
"""Export a pretrained torchvision model's state dict to safetensors for PyTorchInterop.

    pip install torch torchvision safetensors
    python3 Scripts/export_torchvision.py resnet18          # writes resnet18.safetensors
    swift run PyTorchInterop --zoo resnet18 --weights resnet18.safetensors --image photo.png

The names (`layer1.0.conv1.weight`, `fc.bias`, ...) and layouts (convolution weights OIHW, linear
weights [out, in]) are PyTorch's own; swift-cnn's zoo models use the same, so nothing is converted.
Names that swift-cnn's zoo builds as torchvision does: alexnet, vgg11/13/16/19 (and _bn) and
resnet18/34/50/101/152 (see `cnn summary --list`). torchvision's pretrained googlenet also rescales its
input inside the model (transform_input), which the zoo's GoogLeNet does not, so it is left out.
"""
import sys

import torch
import torchvision
from safetensors.torch import save_file

name = sys.argv[1] if len(sys.argv) > 1 else "resnet18"
model = getattr(torchvision.models, name)(weights="DEFAULT").eval()
state = {k: v.contiguous() for k, v in model.state_dict().items()}
save_file(state, f"{name}.safetensors")
with torch.no_grad():
    top = model(torch.zeros(1, 3, 224, 224)).softmax(1).topk(5)
print(f"wrote {name}.safetensors ({len(state)} tensors); top-5 for a zero image: {top.indices.tolist()[0]}")
