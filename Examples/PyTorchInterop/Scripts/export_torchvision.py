#!/usr/bin/env python3
"""Export a torchvision model's state dict to safetensors for PyTorchInterop, and print PyTorch's top-5.

    pip install torch torchvision safetensors pillow
    python3 Scripts/export_torchvision.py resnet18                      # pretrained weights (downloads)
    python3 Scripts/export_torchvision.py resnet18 --image photo.png    # ... and PyTorch's top-5 for it
    python3 Scripts/export_torchvision.py resnet18 --random             # random weights, no download
    swift run PyTorchInterop --zoo resnet18 --weights resnet18.safetensors --image photo.png

The names (`layer1.0.conv1.weight`, `fc.bias`, ...) and layouts (convolution weights OIHW, linear
weights [out, in]) are PyTorch's own; swift-cnn's zoo models use the same, so nothing is converted.
Names that swift-cnn's zoo builds as torchvision does: alexnet, vgg11/13/16/19 (and _bn) and
resnet18/34/50/101/152 (see `cnn summary --list`). torchvision's pretrained googlenet also rescales its
input inside the model (transform_input), which the zoo's GoogLeNet does not, so it is left out.

With --image, the image is read as RGB, scaled to [0, 1] and normalised with ImageNet's mean and
standard deviation, as the Swift side's `networkInput(..., normalization: .imageNet)` does. Give a
224x224 image to compare the two top-5 lists exactly (neither side then resizes); for other sizes
the two resizing filters differ slightly.
"""
import argparse

import torch
import torchvision
from safetensors.torch import save_file

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("name", nargs="?", default="resnet18", help="a torchvision.models constructor")
parser.add_argument("--random", action="store_true", help="random initial weights instead of the pretrained ones")
parser.add_argument("--image", help="an image to classify with PyTorch (PNG or JPEG)")
parser.add_argument("--output", help="the safetensors file (default: NAME.safetensors)")
args = parser.parse_args()

model = getattr(torchvision.models, args.name)(weights=None if args.random else "DEFAULT").eval()
state = {k: v.contiguous() for k, v in model.state_dict().items()}
output = args.output or f"{args.name}.safetensors"
save_file(state, output)
print(f"wrote {output} ({len(state)} tensors)")

if args.image:
    import numpy as np
    from PIL import Image

    rgb = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None] / 255
    if x.shape[-2:] != (224, 224):
        x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        p, i = model((x - mean) / std).softmax(1)[0].topk(5)
    print("PyTorch's top-5:")
    for index, prob in zip(i.tolist(), p.tolist()):
        print(f"  class {index:4d}  {prob:.4f}")
