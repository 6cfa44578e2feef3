#!/usr/bin/env python3
"""Run the same benchmark cases through swift-cnn and its peers in one run, with one thread count.

Peers: PyTorch (eager, CPU), ONNX Runtime (CPU provider) and ncnn (fp32; layers written as ncnn
param files, whole networks converted with pnnx). swift-cnn is measured by running
`cnn bench <suite> --json` as a subprocess; its case lists (and the shapes in its JSON rows) are the
only source of the GEMM, convolution and training shapes, so nothing here repeats them.

    pip install torch onnx onnxruntime ncnn pnnx     # the peers; each one is optional
    python3 Benchmarks/compare/compare.py            # every suite, all cores
    python3 Benchmarks/compare/compare.py --suites conv,train --threads 2 --json
    python3 Benchmarks/compare/compare.py --suites train --rounds 5   # on a machine whose speed drifts

Ratios are ours / peer: below 1 means swift-cnn is faster. With --rounds N the suites run N times,
swift-cnn and the peers in turn, and each ratio is the median of the N rounds' own ratios: on a
shared machine that switches between speed states within minutes, a single round can time one
side in each state. In the models suite each network runs in swift-cnn right before and right
after its peers (their conversions done beforehand) and swift-cnn's time is the mean of the two, so
a drift within the round moves both sides alike. A peer that is not installed is named
as missing, and its columns say so; a suite a peer has no form of (training in ONNX Runtime and
ncnn, GEMM in ncnn) says n/a.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SUITES = ["gemm", "conv", "models", "train"]
PEERS = ["torch", "onnxruntime", "ncnn"]
# Whole networks at batch 1, 224x224 (the zoo's names, as `cnn bench models` reports them).
NETWORKS = ["alexnet", "vgg16", "googlenet", "resnet18", "resnet50"]


# ----------------------------------------------------------------------------------------- peers

def detect_peers():
    """Imports each peer; returns ({name: module or None}, {name: why missing})."""
    found, missing = {}, {}
    for name, pip_name in [("torch", "torch"), ("onnxruntime", "onnxruntime"), ("ncnn", "ncnn"),
                           ("onnx", "onnx"), ("pnnx", "pnnx")]:
        try:
            found[name] = __import__(name)
        except Exception as e:  # ImportError, or a broken install
            found[name] = None
            missing[name] = f"{type(e).__name__}: {e} (pip install {pip_name})"
    return found, missing


def median_ms(fn, repeat, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


class Peers:
    def __init__(self, mods, threads, repeat, workdir):
        self.torch = mods.get("torch")
        self.ort = mods.get("onnxruntime")
        self.ncnn = mods.get("ncnn")
        self.onnx = mods.get("onnx")
        self.pnnx = mods.get("pnnx")
        self.threads = threads
        self.repeat = repeat
        self.workdir = workdir
        if self.torch:
            self.torch.set_num_threads(threads)
            self.torch.manual_seed(0)

    # -- ONNX Runtime
    def ort_session(self, model_bytes):
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        return self.ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])

    def ort_run_time(self, sess, feeds):
        return median_ms(lambda: sess.run(None, feeds), self.repeat)

    def ort_time(self, model_bytes, feeds):
        return self.ort_run_time(self.ort_session(model_bytes), feeds)

    # -- ncnn
    def ncnn_net(self, param_path, bin_path):
        net = self.ncnn.Net()
        net.opt.num_threads = self.threads
        net.opt.use_fp16_storage = False
        net.opt.use_fp16_arithmetic = False
        net.opt.use_fp16_packed = False
        net.opt.use_bf16_storage = False
        net.opt.use_vulkan_compute = False
        net.opt.use_winograd_convolution = True
        if net.load_param(param_path) != 0 or net.load_model(bin_path) != 0:
            raise RuntimeError(f"ncnn could not load {param_path}")
        return net

    def ncnn_time(self, net, inputs, output):
        import numpy as np
        mats = {name: self.ncnn.Mat(np.ascontiguousarray(arr)) for name, arr in inputs.items()}

        def run():
            ex = net.create_extractor()
            for name, m in mats.items():
                ex.input(name, m)
            ret, out = ex.extract(output)
            if ret != 0:
                raise RuntimeError(f"ncnn extract returned {ret}")
        return median_ms(run, self.repeat)


# --------------------------------------------------------------------------------- swift-cnn side

def find_cnn(path):
    if path:
        return path
    exe = os.path.join(REPO, ".build", "release", "cnn")
    if not os.path.exists(exe):
        print(f"# building cnn: swift build -c release --product cnn (in {REPO})", file=sys.stderr)
        subprocess.run(["swift", "build", "-c", "release", "--product", "cnn"], cwd=REPO, check=True)
    return exe


_SUITES_OF = {}


def ours_has(cnn, suite):
    """Whether this build of `cnn` has the bench suite (from `cnn bench --help`)."""
    if cnn not in _SUITES_OF:
        p = subprocess.run([cnn, "bench", "--help"], capture_output=True, text=True)
        after = p.stdout.split("SUBCOMMANDS:", 1)[-1]
        _SUITES_OF[cnn] = {line.split()[0] for line in after.splitlines() if line.startswith("  ") and line.split()}
    return suite in _SUITES_OF[cnn]


def run_ours(cnn, args, threads):
    """Runs `cnn bench ... --json`; returns (rows, error text or None)."""
    if not ours_has(cnn, args[0]):
        return [], f"`cnn bench {args[0]}` is not in this build of cnn"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    p = subprocess.run([cnn, "bench"] + args + ["--json"], capture_output=True, text=True, env=env)
    if p.returncode != 0:
        lines = [l.strip() for l in p.stderr.splitlines() if l.strip()]
        first = next((l for l in lines if l.lower().startswith("error")), lines[0] if lines else "exit %d" % p.returncode)
        return [], first
    return [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")], None


# ------------------------------------------------------------------------------------------ suites

def suite_gemm(cnn, peers, a):
    rows, err = run_ours(cnn, ["gemm", "--threads", str(a.threads), "--repeat", str(a.repeat)]
                         + (["--filter", a.case] if a.case else []), a.threads)
    results = []
    if err:
        return [{"suite": "gemm", "case": "*", "ours": None, "error": err}]
    best = max({r["strategy"] for r in rows}, key=["generic", "avx2", "avx512"].index)
    for r in rows:
        if r["strategy"] != best:
            continue
        m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
        res = {"suite": "gemm", "case": r["case"], "ours": r["ms"], "ours_gflops": r["gflops"], "flops": 2.0 * m * n * k}
        if peers.torch:
            t = peers.torch
            x, y = t.rand(m, k), t.rand(k, n)
            out = t.empty(m, n)
            res["torch"] = median_ms(lambda: t.mm(x, y, out=out), a.repeat)
        if peers.ort and peers.onnx:
            import numpy as np
            res["onnxruntime"] = peers.ort_time(onnx_matmul(peers.onnx, m, n, k),
                                                {"a": np.random.rand(m, k).astype(np.float32),
                                                 "b": np.random.rand(k, n).astype(np.float32)})
        res["ncnn"] = "n/a"  # ncnn has no standalone SGEMM entry point in its Python binding
        results.append(res)
    return results


def onnx_matmul(onnx, m, n, k):
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "mm",
                          [helper.make_tensor_value_info("a", TensorProto.FLOAT, [m, k]),
                           helper.make_tensor_value_info("b", TensorProto.FLOAT, [k, n])],
                          [helper.make_tensor_value_info("c", TensorProto.FLOAT, [m, n])])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def suite_conv(cnn, peers, a):
    rows, err = run_ours(cnn, ["conv", "--strategy", "auto", "--threads", str(a.threads),
                               "--repeat", str(a.repeat)] + (["--case", a.case] if a.case else []), a.threads)
    if err:
        return [{"suite": "conv", "case": "*", "ours": None, "error": err}]
    import numpy as np
    results = []
    for r in rows:
        N, C, H, W, K, R, stride, pad, groups = json.loads(r["geometry"]) if isinstance(r["geometry"], str) else r["geometry"]
        P, Q = (H + 2 * pad - R) // stride + 1, (W + 2 * pad - R) // stride + 1
        flops = 2.0 * N * K * P * Q * (C // groups) * R * R
        res = {"suite": "conv", "case": r["case"], "ours": r["ms"], "ours_runs": r.get("runs"), "flops": flops}
        x = np.random.rand(N, C, H, W).astype(np.float32)
        w = (np.random.rand(K, C // groups, R, R).astype(np.float32) - 0.5)
        b = np.random.rand(K).astype(np.float32)
        if peers.torch:
            t = peers.torch
            conv = t.nn.Conv2d(C, K, R, stride=stride, padding=pad, groups=groups).eval()
            xt = t.from_numpy(x)
            with t.no_grad():
                res["torch"] = median_ms(lambda: conv(xt), a.repeat)
        if peers.ort and peers.onnx:
            res["onnxruntime"] = peers.ort_time(onnx_conv(peers.onnx, x.shape, w, b, stride, pad, groups), {"x": x})
        if peers.ncnn:
            if N != 1:
                res["ncnn"] = "n/a"  # ncnn's extractor takes one image at a time
            else:
                param, binf = ncnn_conv_files(peers.workdir, r["case"], C, H, W, w, b, stride, pad, groups)
                net = peers.ncnn_net(param, binf)
                res["ncnn"] = peers.ncnn_time(net, {"in0": x[0]}, "out0")
        results.append(res)
    return results


def onnx_conv(onnx, xshape, w, b, stride, pad, groups):
    from onnx import TensorProto, helper, numpy_helper
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride, stride], pads=[pad] * 4, group=groups)
    g = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(xshape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                          initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def ncnn_conv_files(workdir, name, C, H, W, w, b, stride, pad, groups):
    """One Convolution layer as an ncnn param/bin pair (fp32 weights tagged 0, then the bias)."""
    import numpy as np
    K, _, R, _ = w.shape
    layer = "Convolution" if groups == 1 else "ConvolutionDepthWise"
    extra = "" if groups == 1 else f" 7={groups}"
    param = os.path.join(workdir, name + ".param")
    binf = os.path.join(workdir, name + ".bin")
    with open(param, "w") as f:
        f.write("7767517\n2 2\n")
        f.write(f"Input in0 0 1 in0 0={W} 1={H} 2={C}\n")
        f.write(f"{layer} conv0 1 1 in0 out0 0={K} 1={R} 3={stride} 4={pad} 5=1 6={w.size}{extra}\n")
    with open(binf, "wb") as f:
        f.write(np.zeros(1, dtype=np.uint32).tobytes())  # tag 0: raw float32 weights
        f.write(w.astype(np.float32).tobytes())
        f.write(b.astype(np.float32).tobytes())
    return param, binf


def ours_network_ms(cnn, name, a):
    """One network's compiled batch-1 time from `cnn bench models --case NAME` (ms, error or None)."""
    rows, err = run_ours(cnn, ["models", "--case", name, "--threads", str(a.threads), "--repeat", str(a.repeat)],
                         a.threads)
    for r in rows:
        # The inference form at batch 1, 224x224 (the suite may report others too).
        if r.get("suite") == "models" and r["case"].split()[0].lower().replace("-", "") == name:
            return r["ms"], None
    return None, err or f"`cnn bench models --case {name}` reported no {name} row"


def suite_models(cnn, peers, a):
    """Each network is timed in swift-cnn right before and right after its peers, and swift-cnn's
    time is the mean of the two: on a machine whose speed drifts, the peers' runs then sit between
    ours instead of minutes away from them. Everything slow that is not timed (building the PyTorch
    module, the ONNX export, the pnnx conversion, loading) happens first."""
    results = []
    for name in [n for n in NETWORKS if a.case in n]:
        res = {"suite": "models", "case": f"{name} batch 1 224x224"}
        timers = []
        if peers.torch:
            t = peers.torch
            model = build_network(t, name).eval()
            x = t.randn(1, 3, 224, 224)

            def time_torch(model=model, x=x, t=t):
                with t.no_grad():
                    return median_ms(lambda: model(x), a.repeat)
            timers.append(("torch", time_torch))
            with t.no_grad():
                if peers.ort and peers.onnx:
                    import io
                    buf = io.BytesIO()
                    t.onnx.export(model, x, buf, input_names=["x"], output_names=["y"], dynamo=False)
                    sess, feeds = peers.ort_session(buf.getvalue()), {"x": x.numpy()}
                    timers.append(("onnxruntime", lambda sess=sess, feeds=feeds: peers.ort_run_time(sess, feeds)))
                if peers.ncnn and peers.pnnx:
                    net = ncnn_network(peers, name, model, x)
                    if isinstance(net, str):
                        res["ncnn"] = net
                    else:
                        timers.append(("ncnn", lambda net=net, x=x:
                                       peers.ncnn_time(net, {"in0": x.numpy()[0]}, "out0")))
        before, err = ours_network_ms(cnn, name, a)
        for peer, fn in timers:
            res[peer] = fn()
        after, err_after = ours_network_ms(cnn, name, a)
        times = [v for v in (before, after) if v is not None]
        res["ours"] = sum(times) / len(times) if times else None
        res["ours_before"], res["ours_after"] = before, after
        if err or err_after:
            res["ours_error"] = err or err_after
        results.append(res)
    return results


def ncnn_network(peers, name, model, x):
    """Traces the network and converts it with the pnnx tool to ncnn: the loaded net, or an error."""
    t = peers.torch
    pt = os.path.join(peers.workdir, name + ".pt")
    t.jit.trace(model, x).save(pt)
    tool = shutil.which("pnnx") or os.path.join(os.path.dirname(peers.pnnx.__file__), "bin", "pnnx")
    p = subprocess.run([tool, pt, "inputshape=[1,3,224,224]", "fp16=0"], cwd=peers.workdir,
                       capture_output=True, text=True)
    param, binf = os.path.join(peers.workdir, name + ".ncnn.param"), os.path.join(peers.workdir, name + ".ncnn.bin")
    if p.returncode != 0 or not os.path.exists(param):
        return "error: pnnx failed: " + (p.stderr.strip().splitlines() or ["?"])[-1]
    return peers.ncnn_net(param, binf)


def suite_train(cnn, peers, a):
    rows, err = run_ours(cnn, ["train", "--threads", str(a.threads), "--repeat", str(a.repeat), "--no-forward"]
                         + (["--case", a.case] if a.case else []), a.threads)
    if err and a.case and "no training case matches" in err:
        return []
    if err:
        return [{"suite": "train", "case": "*", "ours": None, "error": err}]
    results = []
    for r in rows:
        if r["strategy"] != "step":
            continue
        res = {"suite": "train", "case": r["case"], "ours": r["ms"], "onnxruntime": "n/a", "ncnn": "n/a"}
        if peers.torch:
            t = peers.torch
            shape = json.loads(r["input"]) if isinstance(r["input"], str) else r["input"]
            lr, momentum, wd = json.loads(r["sgd"]) if isinstance(r["sgd"], str) else r["sgd"]
            model = build_network(t, r["network"], classes=int(r["classes"]), input_channels=shape[1]).train()
            opt = t.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd)
            x = t.randn(*shape)
            y = t.randint(0, int(r["classes"]), (shape[0],))
            loss_fn = t.nn.CrossEntropyLoss()

            def step():
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(x), y)
                loss.backward()
                opt.step()
            res["torch"] = median_ms(step, a.repeat)
        results.append(res)
    return results


# ------------------------------------------------------------- the networks, as torchvision builds them

def build_network(t, name, classes=1000, input_channels=3):
    """torchvision's architectures, written out so that no torchvision build has to match torch's."""
    nn = t.nn

    def conv_relu(c, k, size, **kw):
        return [nn.Conv2d(c, k, size, **kw), nn.ReLU(inplace=True)]

    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(input_channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))
    if name == "alexnet":
        return nn.Sequential(*conv_relu(input_channels, 64, 11, stride=4, padding=2), nn.MaxPool2d(3, 2),
                             *conv_relu(64, 192, 5, padding=2), nn.MaxPool2d(3, 2),
                             *conv_relu(192, 384, 3, padding=1), *conv_relu(384, 256, 3, padding=1),
                             *conv_relu(256, 256, 3, padding=1), nn.MaxPool2d(3, 2), nn.AdaptiveAvgPool2d(6),
                             nn.Flatten(), nn.Dropout(), nn.Linear(9216, 4096), nn.ReLU(inplace=True), nn.Dropout(),
                             nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Linear(4096, classes))
    if name == "vgg16":
        layers, c = [], input_channels
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += conv_relu(c, v, 3, padding=1)
                c = v
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(7), nn.Flatten(), nn.Linear(25088, 4096), nn.ReLU(True),
                             nn.Dropout(), nn.Linear(4096, 4096), nn.ReLU(True), nn.Dropout(), nn.Linear(4096, classes))
    if name == "googlenet":
        return _googlenet(t, classes, input_channels)
    if name in ("resnet18", "resnet50"):
        return _resnet(t, name, classes, input_channels)
    raise ValueError(f"unknown network {name}")


def _googlenet(t, classes, input_channels):
    nn = t.nn

    def basic(c, k, size, **kw):
        return nn.Sequential(nn.Conv2d(c, k, size, bias=False, **kw), nn.BatchNorm2d(k, eps=0.001), nn.ReLU(inplace=True))

    class Inception(nn.Module):
        def __init__(self, c, c1, c3r, c3, c5r, c5, pp):
            super().__init__()
            self.b1 = basic(c, c1, 1)
            self.b2 = nn.Sequential(basic(c, c3r, 1), basic(c3r, c3, 3, padding=1))
            self.b3 = nn.Sequential(basic(c, c5r, 1), basic(c5r, c5, 3, padding=1))  # torchvision's 3x3
            self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1, ceil_mode=True), basic(c, pp, 1))

        def forward(self, x):
            return t.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)

    return nn.Sequential(
        basic(input_channels, 64, 7, stride=2, padding=3), nn.MaxPool2d(3, 2, ceil_mode=True),
        basic(64, 64, 1), basic(64, 192, 3, padding=1), nn.MaxPool2d(3, 2, ceil_mode=True),
        Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64),
        nn.MaxPool2d(3, 2, ceil_mode=True),
        Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
        Inception(512, 128, 128, 256, 24, 64, 64), Inception(512, 112, 144, 288, 32, 64, 64),
        Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(2, 2, ceil_mode=True),
        Inception(832, 256, 160, 320, 32, 128, 128), Inception(832, 384, 192, 384, 48, 128, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1024, classes))


def _resnet(t, name, classes, input_channels):
    nn = t.nn
    bottleneck = name == "resnet50"
    blocks = [2, 2, 2, 2] if name == "resnet18" else [3, 4, 6, 3]
    expansion = 4 if bottleneck else 1

    class Block(nn.Module):
        def __init__(self, c, width, stride):
            super().__init__()
            out = width * expansion
            if bottleneck:
                self.main = nn.Sequential(
                    nn.Conv2d(c, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                    nn.Conv2d(width, out, 1, bias=False), nn.BatchNorm2d(out))
            else:
                self.main = nn.Sequential(
                    nn.Conv2d(c, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                    nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width))
            self.down = (nn.Sequential(nn.Conv2d(c, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                         if stride != 1 or c != out else nn.Identity())

        def forward(self, x):
            return t.relu(self.main(x) + self.down(x))

    layers, c = [nn.Conv2d(input_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                 nn.MaxPool2d(3, 2, 1)], 64
    for i, (width, count) in enumerate(zip([64, 128, 256, 512], blocks)):
        for j in range(count):
            layers.append(Block(c, width, 2 if (i > 0 and j == 0) else 1))
            c = width * expansion
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, classes))


# ------------------------------------------------------------------------------------------ output

def machine_line(cnn, threads):
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    peak = None
    rows, _ = run_ours(cnn, ["peak"], threads)
    best = [r for r in rows if r["threads"] == threads]
    if best:
        peak = max(r["gflops"] for r in best)
    return model, os.cpu_count(), peak


def combine_rounds(rounds):
    """One row per (suite, case): the median over rounds of each time, and of each round's own ratio
    (both sides of a ratio measured minutes apart at most); the rounds' values are kept as lists."""
    def median(xs):
        xs = sorted(x for x in xs if isinstance(x, (int, float)))
        if not xs:
            return None
        mid = len(xs) // 2
        return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2
    out = []
    for row in rounds[0]:
        key = (row["suite"], row["case"])
        same = [r for rs in rounds for r in rs if (r["suite"], r["case"]) == key]
        merged = dict(row)
        for field in ["ours"] + PEERS + ["ratio_" + p for p in PEERS]:
            values = [r.get(field) for r in same]
            numeric = [v for v in values if isinstance(v, (int, float))]
            if numeric:
                merged[field] = median(numeric)
                merged[field + "_rounds"] = values
        out.append(merged)
    return out


def fmt(v):
    if isinstance(v, (int, float)):
        return f"{v:.3f}"
    return "-" if v is None else str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every implementation (default: all cores)")
    ap.add_argument("--suites", default=",".join(SUITES), help="comma-separated: " + ",".join(SUITES))
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per case (median reported)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run the suites this many times, swift-cnn and the peers in turn each time; times are "
                         "the median over rounds and each ratio the median of the rounds' own ratios, so a "
                         "machine that changes speed between rounds moves both sides of a ratio together")
    ap.add_argument("--cnn", help="path of the cnn executable (default: .build/release/cnn, built if missing)")
    ap.add_argument("--case", default="", help="only cases whose name contains this text")
    ap.add_argument("--json", action="store_true", help="one JSON object per line instead of the table")
    a = ap.parse_args()
    suites = [s for s in a.suites.split(",") if s]
    for s in suites:
        if s not in SUITES:
            ap.error(f"unknown suite {s!r} (known: {', '.join(SUITES)})")
    if a.threads < 1 or a.repeat < 1 or a.rounds < 1:
        ap.error("--threads, --repeat and --rounds must be at least 1")

    mods, missing = detect_peers()
    cnn = find_cnn(a.cnn)
    model, cores, peak = machine_line(cnn, a.threads)
    header = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": f"{model}, {cores} cores, {platform.system()} {platform.machine()}",
        "threads": a.threads,
        "fma_peak_gflops": peak,
        "load_average": os.getloadavg(),
        "peers": {p: (getattr(mods[p], "__version__", "installed") if mods.get(p) else "missing") for p in PEERS + ["pnnx"]},
        "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
    }
    for name, why in missing.items():
        note = {"ncnn": "ncnn column missing", "torch": "PyTorch column missing",
                "onnxruntime": "ONNX Runtime column missing", "onnx": "ONNX Runtime cases need it too (to build the graphs)",
                "pnnx": "ncnn whole-network cases need it (to convert the networks)"}[name]
        print(f"# peer missing: {name} — {note}; {why}", file=sys.stderr)

    header["rounds"] = a.rounds
    rounds = []
    with tempfile.TemporaryDirectory(prefix="cnn-compare-") as workdir:
        peers = Peers(mods, a.threads, a.repeat, workdir)
        for _ in range(a.rounds):
            results = []
            for s in suites:
                results += {"gemm": suite_gemm, "conv": suite_conv, "models": suite_models, "train": suite_train}[s](cnn, peers, a)
            for r in results:
                for p in PEERS:
                    if p not in r:
                        r[p] = "missing" if mods.get(p) is None or (p == "onnxruntime" and mods.get("onnx") is None) \
                            or (p == "ncnn" and r["suite"] == "models" and mods.get("pnnx") is None) else None
                    v = r[p]
                    r["ratio_" + p] = (r["ours"] / v) if isinstance(v, float) and isinstance(r.get("ours"), (int, float)) and v > 0 else None
            rounds.append(results)
    results = rounds[0] if a.rounds == 1 else combine_rounds(rounds)

    if a.json:
        print(json.dumps(dict(header, kind="header")))
        for r in results:
            print(json.dumps(r))
        return
    print(f"# {header['date']}  {header['machine']}")
    print(f"# threads {a.threads}, FMA peak {fmt(peak)} GFLOP/s ({a.threads} threads, probed by cnn bench peak), "
          f"load average {' '.join('%.2f' % x for x in header['load_average'])}")
    print("# peers: " + ", ".join(f"{k} {v}" for k, v in header["peers"].items()))
    if a.rounds == 1:
        print("# times in ms (median); ratio = ours / peer, below 1 = swift-cnn faster")
    else:
        print(f"# times in ms (median of {a.rounds} rounds' medians); ratio = median of the rounds' ours / peer, "
              "below 1 = swift-cnn faster")
    cols = ["suite", "case", "ours", "torch", "onnxruntime", "ncnn", "ours/torch", "ours/ort", "ours/ncnn"]
    table = [cols]
    for r in results:
        table.append([r["suite"], r["case"], fmt(r.get("ours")) if r.get("ours") is not None else ("error" if r.get("error") or r.get("ours_error") else "-"),
                      fmt(r["torch"]), fmt(r["onnxruntime"]), fmt(r["ncnn"]),
                      fmt(r["ratio_torch"]), fmt(r["ratio_onnxruntime"]), fmt(r["ratio_ncnn"])])
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())
    errors = [r for r in results if r.get("error") or r.get("ours_error")]
    for r in errors:
        print(f"# {r['suite']}: swift-cnn error: {r.get('error') or r.get('ours_error')}")


if __name__ == "__main__":
    main()
