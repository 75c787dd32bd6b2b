#!/usr/bin/python3
# Oracle generator: exports torchvision models (seeded random weights) to ONNX and writes PyTorch reference data.
"""Writes, per model, DIR/<model>/{model.onnx, meta.json, *.bin}.

Every model is built with weights=None, seeded, its BatchNorm statistics and affine parameters
randomised (so BN is never an identity), and wrapped so that the exported graph returns
(logits, layerA, layerB): two intermediate activations become named graph outputs that camd
can target by name. For each case (random input batch 1 and 4, two skimage photos alone and
together) the reference data written is: input, logits, and for each layer its activation and
the gradient of the target class logit (argmax of item 0, same class for all items) w.r.t. it.
All files are raw little-endian float32, in the layer's own layout (NCHW; N x T x C for token
maps, N x H x W x C for Swin's maps; for those two the Grad-CAM map is written too). References are computed in float64 and rounded
once; PyTorch's own float32 error is recorded in meta.json ("torch_f32") for scale. For each
gradient a "kink envelope" (grad_env, see kink_envelope) marks where any float32 implementation
may legitimately differ because a ReLU/max-pool input sits within rounding of its kink: a random
input perturbation probe plus, for every ReLU/ReLU6/hard-swish unit whose exact input lies within
KINK_DELTA of a kink, the exact gradient change its flip causes.

Self-checks (pure PyTorch/onnx, independent of camd): onnx.checker, ONNX shape inference
against the recorded shapes, the hooked wrapper reproduces the plain model's logits, and a
float64 central finite difference along random directions confirms each stored gradient.
Generated files are cached: a model is skipped when its meta.json records the same hash of this
script (and torch/torchvision versions) and all its files exist.

Run with Debian's python: /usr/bin/python3 tests/oracle/gen_oracle.py --out DIR [--models a,b]
"""

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
import zlib

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    from PIL import Image
    from torch.overrides import TorchFunctionMode
except ImportError as e:  # not Debian's python (or python3-torch missing): skip, as ctest reads 77
    print(f"gen_oracle: skipped, {e} (run with /usr/bin/python3 and python3-torch, "
          "python3-torchvision, python3-onnx, python3-skimage installed)", file=sys.stderr)
    sys.exit(77)

SKIMAGE_DATA = "/usr/lib/python3/dist-packages/skimage/data"
MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def _densenet_forward(model, x, capture):
    """densenet121's own forward, with the ReLU after `features` made a capturable value."""
    f = model.features(x)
    a = capture("features_relu", F.relu(f))
    out = F.adaptive_avg_pool2d(a, (1, 1))
    return model.classifier(torch.flatten(out, 1))


# name -> spec. layers: (onnx output name, module path) — a module path None means the value is
# captured by a custom forward. opset / dynamic: export options. size: input H=W. tokens: layers
# that are transformer token sequences N x T x C (class token first, then the patch grid of
# size / patch, row-major): besides the activation and gradient, the Grad-CAM map of the token
# map is written (pytorch-grad-cam's reshape_transform: drop the class token, reshape to the grid).
# nhwc: 4-D layers that are N x H x W x C (torchvision's Swin keeps its maps channels-last); their
# Grad-CAM map is written too (pytorch-grad-cam's Swin reshape_transform: move C to axis 1).
# convnext_tiny is exported at opset 13, so its LayerNorms are the decomposed
# ReduceMean/Sub/Pow/Sqrt/Div pattern; vit_b_16 and swin_t at opset 17 (LayerNormalization).
# suggested: the layer camd must suggest by itself (test_oracle checks it; the hooked value is a
# named graph output). residual_scale: see calm_residuals.
# maxvit_t: opset 17 (its attention is Einsum, run as MatMul); blocks.3 is the last NCHW map
# before the pool, blocks.1's gradient passes through the window and grid attention of blocks 2-3.
# swin_t: the last block's norm1 (the layer pytorch-grad-cam's Swin example uses; the last stage
# has one 7 x 7 window, no shift) and the patch embedding's output, whose gradient passes
# through all 12 blocks, the shifted windows and their attention masks included.
SPECS = {
    "resnet18": dict(layers=[("layer3", "layer3"), ("layer4", "layer4")], opset=11),
    "resnet50": dict(layers=[("layer3", "layer3"), ("layer4", "layer4")]),
    "vgg16": dict(layers=[("features.29", "features.29"), ("features", "features")]),
    "mobilenet_v2": dict(layers=[("features.13", "features.13"), ("features", "features")]),
    "mobilenet_v3_large": dict(layers=[("features.12", "features.12"), ("features", "features")]),
    "densenet121": dict(
        layers=[("features.denseblock3", "features.denseblock3"), ("features_relu", None)],
        forward=_densenet_forward,
    ),
    "efficientnet_b0": dict(layers=[("features.5", "features.5"), ("features", "features")]),
    "squeezenet1_1": dict(layers=[("features.7", "features.7"), ("features", "features")],
                          dynamic=False),
    "shufflenet_v2_x1_0": dict(layers=[("stage3", "stage3"), ("conv5", "conv5")]),
    "googlenet": dict(layers=[("inception4e", "inception4e"), ("inception5b", "inception5b")],
                      kwargs=dict(aux_logits=False, init_weights=True, transform_input=False),
                      dynamic=False),
    "inception_v3": dict(layers=[("Mixed_6e", "Mixed_6e"), ("Mixed_7c", "Mixed_7c")],
                         kwargs=dict(aux_logits=False, init_weights=True), size=299),
    "regnet_y_400mf": dict(layers=[("trunk_output.block3", "trunk_output.block3"),
                                   ("trunk_output", "trunk_output")]),
    "convnext_tiny": dict(layers=[("features.5", "features.5"), ("features", "features")]),
    "efficientnet_v2_s": dict(layers=[("features.5", "features.5"), ("features", "features")],
                              residual_scale=0.5),
    "vit_b_16": dict(layers=[("encoder.layers.encoder_layer_11.ln_1",
                              "encoder.layers.encoder_layer_11.ln_1"),
                             ("conv_proj", "conv_proj")],
                     opset=17, tokens={"encoder.layers.encoder_layer_11.ln_1": 16},
                     suggested="encoder.layers.encoder_layer_11.ln_1"),
    "maxvit_t": dict(layers=[("blocks.3", "blocks.3"), ("blocks.1", "blocks.1")], opset=17,
                     suggested="blocks.3"),
    "swin_t": dict(layers=[("features.7.1.norm1", "features.7.1.norm1"),
                           ("features.0", "features.0")],
                   opset=17, nhwc=["features.7.1.norm1", "features.0"],
                   suggested="features.7.1.norm1"),
}
DEFAULT_MODELS = list(SPECS)


def _script_hash():
    with open(os.path.abspath(__file__), "rb") as f:
        h = hashlib.sha256(f.read())
    h.update(("torch " + torch.__version__ + " torchvision " + torchvision.__version__).encode())
    return h.hexdigest()


SCRIPT_HASH = _script_hash()  # what the cache is keyed on: this file and the torch versions


class Wrapped(nn.Module):
    """Returns (logits, *activations). Activations are captured by forward hooks (or by the
    spec's custom forward); `perturb` (name -> tensor) is added to a captured value, which the
    finite-difference self-check uses."""

    def __init__(self, model, spec):
        super().__init__()
        self.model = model
        self.names = [n for n, _ in spec["layers"]]
        self.custom_forward = spec.get("forward")
        self.acts = {}
        self.perturb = {}
        mods = dict(model.named_modules())
        for name, path in spec["layers"]:
            if path is not None:
                mods[path].register_forward_hook(self._hook(name))

    def capture(self, name, t):
        if name in self.perturb:
            t = t + self.perturb[name]
        self.acts[name] = t
        return t

    def _hook(self, name):
        def hook(_module, _inputs, output):
            return self.capture(name, output)

        return hook

    def forward(self, x):
        self.acts = {}
        if self.custom_forward is not None:
            logits = self.custom_forward(self.model, x, self.capture)
        else:
            logits = self.model(x)
        return (logits,) + tuple(self.acts[n] for n in self.names)


def randomise_bn(model, gen):
    """Non-identity BatchNorm: random positive running_var, running_mean, weight, bias. The
    statistics are drawn around unit scale so that deep random networks stay well-conditioned
    (calibrated first on a random batch, then perturbed). The weights stay within 0.75..1.25:
    with 0.5..1.5 efficientnet_b0's 16 squeeze-excite blocks multiply the gains into a chaotic
    function whose logits move by 3e-4 (relative) when the weights move by one float32 rounding,
    so no float32 implementation could meet the 1e-4 tolerance (see float32_sensitivity)."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            with torch.no_grad():
                m.running_var.mul_(torch.empty(c).uniform_(0.5, 2.0, generator=gen))
                m.running_mean.add_(torch.randn(c, generator=gen) * 0.2 *
                                    m.running_var.sqrt())
                m.weight.copy_(torch.empty(c).uniform_(0.75, 1.25, generator=gen))
                m.bias.copy_(torch.randn(c, generator=gen) * 0.2)


def randomise_transformer(model, gen):
    """Non-trivial LayerNorm affine parameters (weights 0.75..1.25, biases ~0.2), ConvNeXt's
    layer scale (initialised to 1e-6, which would make every block an identity: 0.1..0.3),
    ViT's class token and classifier head (initialised to zeros: every gradient would be 0)."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(torch.empty(m.weight.shape).uniform_(0.75, 1.25, generator=gen))
                m.bias.copy_(torch.randn(m.bias.shape, generator=gen) * 0.2)
        for name, p in model.named_parameters():
            if name.endswith("layer_scale"):
                p.copy_(torch.empty(p.shape).uniform_(0.1, 0.3, generator=gen))
            if name == "class_token":
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            if name.startswith("heads.") and not p.any():
                fan_in = p.shape[-1] if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in ** 0.5)


def calm_residuals(model, factor):
    """Scales the last BatchNorm (weight and bias) of every residual MBConv / FusedMBConv block
    by `factor`, as ConvNeXt's layer scale and zero-init-residual schemes do. Without it,
    efficientnet_v2_s's 35 residual blocks with randomised BN grow the residual stream to
    ~2e4 and the model is ill-conditioned on its own: PyTorch's float32 logits miss its float64
    ones by 2.3e-2 on the astronaut photo and moving the parameters by float32 rounding moves
    `features` by 4.5e-2 (whatever runs it). With 0.5: 6e-7 and 2.4e-7."""
    from torchvision.models.efficientnet import FusedMBConv, MBConv

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (MBConv, FusedMBConv)) and m.use_res_connect:
                bn = m.block[-1][1]
                bn.weight.mul_(factor)
                bn.bias.mul_(factor)


def calibrate_bn(model, size, gen):
    """Sets running statistics from one random batch in train mode (cumulative average)."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 3, size, size, generator=gen))
    for m in bns:
        m.momentum = 0.1
    model.eval()


def build(name, spec):
    torch.manual_seed(zlib.crc32(name.encode()))
    ctor = getattr(torchvision.models, name)
    model = ctor(weights=None, **spec.get("kwargs", {}))
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()) + 1)
    calibrate_bn(model, spec.get("size", 224), gen)
    randomise_bn(model, gen)
    randomise_transformer(model, gen)
    if "residual_scale" in spec:
        calm_residuals(model, spec["residual_scale"])
    model.eval()
    return model


def load_photo(fname, size):
    img = Image.open(os.path.join(SKIMAGE_DATA, fname)).convert("RGB")
    img = img.resize((size, size), Image.BILINEAR)
    a = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    a = (a - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1)
    return a.unsqueeze(0).contiguous()


def make_cases(name, size):
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()) + 2)
    chelsea = load_photo("chelsea.png", size)
    astronaut = load_photo("astronaut.png", size)
    return [
        ("randn1", torch.randn(1, 3, size, size, generator=gen)),
        ("randn4", torch.randn(4, 3, size, size, generator=gen)),
        ("chelsea", chelsea),
        ("astronaut", astronaut),
        ("photos2", torch.cat([chelsea, astronaut], 0)),
    ]


def write_f32(path, t):
    a = t.detach().cpu().contiguous().numpy().astype("<f4", copy=False)
    a.tofile(path)


def safe(name):
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def export(wrapped, spec, size, path):
    dynamic = spec.get("dynamic", True)
    names = ["logits"] + wrapped.names
    dummy = torch.randn(2 if dynamic else 1, 3, size, size)
    axes = {n: {0: "batch"} for n in ["input"] + names} if dynamic else None
    # TrainingMode.PRESERVE (the model is in eval mode) keeps BatchNormalization nodes in the
    # file. With the default (EVAL) the exporter folds BN into the Conv weights in float32, so
    # the file no longer describes the float64 reference's function: with the randomised BN
    # statistics that rounding alone puts efficientnet_b0's `features` 1.7e-4 (relative) away
    # from the reference, whatever runs the file. Kept BN makes the file and the reference the
    # same function, and exercises camd's own load-time fold (fold_bn.c, in double).
    # Transformers: without gradients nn.MultiheadAttention takes its fused inference path
    # (aten::_native_multi_head_attention), which torch.onnx cannot export; an input that
    # requires grad keeps the plain path (same function).
    grad = spec.get("tokens") is not None
    if grad:
        dummy.requires_grad_(True)
    with (torch.enable_grad() if grad else torch.no_grad()), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*constant folding.*")
        torch.onnx.export(wrapped, dummy, path, opset_version=spec.get("opset", 13),
                          do_constant_folding=True, input_names=["input"], output_names=names,
                          dynamic_axes=axes, training=torch.onnx.TrainingMode.PRESERVE)


def check_onnx(path, meta):
    """onnx.checker + shape inference: outputs exist with the recorded per-sample shapes."""
    import onnx

    onnx.checker.check_model(path)
    m = onnx.load(path)
    m = onnx.shape_inference.infer_shapes(m)
    outs = {o.name: o for o in m.graph.output}
    want = {"logits": meta["logits"]["shape"]}
    want.update({l["name"]: l["shape"] for l in meta["layers"]})
    for n, shape in want.items():
        if n not in outs:
            raise RuntimeError(f"{path}: output {n} missing")
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param
                for d in outs[n].type.tensor_type.shape.dim]
        # Non-batch dims may stay symbolic when a Reshape computes them (shufflenet).
        got = [w if isinstance(d, str) and i > 0 else (1 if isinstance(d, str) else d)
               for i, (d, w) in enumerate(zip(dims, shape))]
        if got != shape or len(dims) != len(shape):
            raise RuntimeError(f"{path}: output {n} has shape {dims}, expected {shape}")
        if meta["dynamic_batch"] != isinstance(dims[0], str):
            raise RuntimeError(f"{path}: output {n} batch axis {dims[0]!r} "
                               f"(dynamic expected: {meta['dynamic_batch']})")
    inp = [i for i in m.graph.input if i.name == "input"]
    if not inp:
        raise RuntimeError(f"{path}: no graph input 'input'")
    return len(m.graph.node), sorted({n.op_type for n in m.graph.node})


def run_case(wrapped, x):
    """Forward + autograd in the wrapper's dtype: (logits, {layer: act}, class, {layer: grad})."""
    dtype = next(wrapped.parameters()).dtype
    xin = x.to(dtype).requires_grad_(True)  # parameters are frozen; the input carries the graph
    outs = wrapped(xin)
    logits, acts = outs[0], outs[1:]
    cls = int(logits[0].argmax())
    # Items are independent, so d(sum_i logit_i[cls]) / d act_i = d logit_i[cls] / d act_i.
    grads = torch.autograd.grad(logits[:, cls].sum(), acts)
    names = wrapped.names
    return (logits.detach(), {n: a.detach() for n, a in zip(names, acts)}, cls,
            {n: g.detach() for n, g in zip(names, grads)})


# Single-photo cases are the items of "photos2": eval-mode items are independent, so they are
# sliced from it (same class) instead of being run again.
SLICES = {"chelsea": ("photos2", 0), "astronaut": ("photos2", 1)}


GRAD_TOL = 1e-3  # test_oracle's gradient tolerance, relative to max|ref|

# Relative size of the input perturbation that maps where the gradient can jump (see below).
KINK_DELTA = 3e-6


def kink_envelope(wrapped, x, cls, grads):
    """Where a float32 gradient may legitimately differ from the exact one: the elementwise sum
    of perturbation_envelope and unit_flip_envelope (two independent sources of a jump)."""
    env = perturbation_envelope(wrapped, x, cls, grads)
    flips = unit_flip_envelope(wrapped, x, cls, grads)
    return {n: env[n] + flips[n] for n in env}


def perturbation_envelope(wrapped, x, cls, grads):
    """Backward through ReLU, ReLU6, hard-swish and max-pool is discontinuous: a unit whose input
    lies within float32 rounding (~1e-6 relative) of a kink gets the other derivative in any
    float32 implementation, PyTorch's included, and that changes the layer gradient on the
    unit's whole receptive field. This probe moves the input by +-KINK_DELTA (relative, a few
    times float32 rounding) along one random direction: units that move across their kink (and
    max-pool windows whose maximum changes) show up as max |grad(x +- delta) - grad(x)| per
    element (float64); elsewhere it is ~KINK_DELTA * |grad|, far below the test tolerance. A
    random direction can leave a fragile unit where it is: unit_flip_envelope finds those."""
    gen = torch.Generator().manual_seed(11)
    delta = torch.randn(x.shape, generator=gen, dtype=torch.float64) * KINK_DELTA * x.std()
    env = {n: torch.zeros_like(g) for n, g in grads.items()}
    for sign in (1.0, -1.0):
        xin = (x.double() + sign * delta).requires_grad_(True)
        outs = wrapped(xin)
        gs = torch.autograd.grad(outs[0][:, cls].sum(), outs[1:])
        for n, g in zip(wrapped.names, gs):
            env[n] = torch.maximum(env[n], (g.detach() - grads[n]).abs())
    return env


class KinkSites(TorchFunctionMode):
    """Records the input and output of every ReLU, ReLU6 (hardtanh 0..6) and hard-swish call
    of a forward, module or functional, and runs it out of place so that its input stays a
    value of the autograd graph. kinks: (position, derivative jump) per kind."""

    KINKS = {"relu": ((0.0, 1.0),), "relu6": ((0.0, 1.0), (6.0, 1.0)),
             "hardswish": ((-3.0, 0.5), (3.0, 0.5))}

    def __init__(self, wrapped):
        super().__init__()
        self.wrapped = wrapped
        self.sites = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        kind = None
        if func in (F.relu, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_):
            kind, out = "relu", torch.relu(args[0])
        elif func in (F.relu6, F.hardtanh, F.hardtanh_):
            lo = kwargs.get("min_val", args[1] if len(args) > 1 else -1.0)
            hi = kwargs.get("max_val", args[2] if len(args) > 2 else 1.0)
            if func is F.relu6 or (lo, hi) == (0.0, 6.0):
                kind, out = "relu6", F.hardtanh(args[0], 0.0, 6.0)
        elif func is F.hardswish:
            kind, out = "hardswish", F.hardswish(args[0])
        if kind is None:
            return func(*args, **kwargs)
        # Forward order is a topological order: a call can only depend on the layers captured
        # before it.
        self.sites.append((kind, args[0], out, len(self.wrapped.acts)))
        return out


# A unit is fragile when its exact (float64) input lies within KINK_DELTA * max|input of the
# call| of a kink: float32 rounding of the sums before it may put it on either side.
def unit_flip_envelope(wrapped, x, cls, grads):
    """The gradient change each fragile unit causes when it takes the other derivative, summed
    in absolute value per element over all fragile units (a bound for any subset flipping). Exact
    by linearity: with every other unit's derivative fixed, flipping unit u at a call whose
    output gradient there is g_u adds jump * g_u at u to the call's input gradient, carried to a
    layer by one vector-Jacobian product. Units upstream of a layer do not reach its gradient."""
    env = {n: torch.zeros_like(g) for n, g in grads.items()}
    xin = x.double().requires_grad_(True)
    with KinkSites(wrapped) as ks:
        outs = wrapped(xin)
    acts = list(outs[1:])
    captured = list(wrapped.acts)  # names in capture order
    score = outs[0][:, cls].sum()
    sites = [s for s in ks.sites if s[3] > 0]  # calls before the first layer cannot reach one
    gs = torch.autograd.grad(score, acts + [s[2] for s in sites], retain_graph=True,
                             allow_unused=True)
    for n, g in zip(wrapped.names, gs):
        if not torch.allclose(g, grads[n], rtol=1e-9, atol=0.0):
            raise RuntimeError(f"unit_flip_envelope: running the activations out of place "
                               f"changed the gradient at {n}")
    for (kind, z_graph, _, n_before), gout in zip(sites, gs[len(acts):]):
        if gout is None:
            continue
        reached = [n for n in wrapped.names if n in captured[:n_before]]
        if not reached:
            continue
        z = z_graph.detach()
        reach = 1e-300 + KINK_DELTA * z.abs().max().item()
        jump = torch.zeros_like(z)
        for at, size in KinkSites.KINKS[kind]:
            near = ((z - at).abs() <= reach) & (z != at)
            jump = torch.where(near, torch.full_like(z, size), jump)
        idx = (jump * gout != 0).flatten().nonzero().flatten()
        if idx.numel() == 0:
            continue
        w = (jump * gout).flatten()[idx]
        chunk = max(1, min(64, (1 << 24) // z.numel()))  # <= 128 MiB of float64 seeds
        for start in range(0, idx.numel(), chunk):
            part = idx[start:start + chunk]
            v = torch.zeros((part.numel(), z.numel()), dtype=z.dtype)
            v[torch.arange(part.numel()), part] = w[start:start + chunk]
            deltas = torch.autograd.grad(z_graph, [acts[wrapped.names.index(n)] for n in reached],
                                         grad_outputs=v.reshape((part.numel(),) + tuple(z.shape)),
                                         retain_graph=True, allow_unused=True,
                                         is_grads_batched=True)
            for n, d in zip(reached, deltas):
                if d is not None:
                    env[n] += d.abs().sum(0)
    return {n: e.detach() for n, e in env.items()}


# Largest relative change of logits or a layer activation that rounding the parameters to
# float32 precision may cause; the fixture must stay far below test_oracle's 1e-4 tolerance.
SENSITIVITY_MAX = 1e-5


def float32_sensitivity(wrapped, x, outs):
    """How well-conditioned the fixture is, independently of any implementation: the float64
    model is run with every parameter and buffer multiplied by (1 + 2^-24 * N(0,1)), i.e. moved
    by float32 rounding, and the largest change of the logits and of each layer activation
    (relative to its max |value|) over two draws is returned. By backward error analysis every
    float32 implementation's error is of this size; a fixture where it approaches the test
    tolerance tests luck, not camd."""
    state = {k: v.clone() for k, v in wrapped.state_dict().items()}
    gen = torch.Generator().manual_seed(5)
    worst = 0.0
    try:
        with torch.no_grad():
            for _ in range(2):
                for k, v in wrapped.state_dict().items():
                    if v.dtype == torch.float64:
                        noise = torch.randn(v.shape, generator=gen, dtype=torch.float64)
                        v.copy_(state[k] * (1 + 2.0 ** -24 * noise))
                moved = wrapped(x.double())
                for ref, got in zip(outs, moved):
                    d = ((got - ref).abs().max() / ref.abs().max().clamp_min(1e-30)).item()
                    worst = max(worst, d)
    finally:
        wrapped.load_state_dict(state)
    return worst


def run_cases(wrapped, cases, envelope=False):
    """run_case for every case, in the order given; items of a batch case are reused. With
    envelope, each result carries kink_envelope() as a fifth element."""
    res = {}
    for cname, x in sorted(cases, key=lambda c: c[0] in SLICES):
        src = SLICES.get(cname)
        if src and src[0] in res:
            r = res[src[0]]
            i = src[1]
            if int(r[0][i].argmax()) == r[2]:
                res[cname] = (r[0][i:i + 1], {n: a[i:i + 1] for n, a in r[1].items()}, r[2],
                              {n: g[i:i + 1] for n, g in r[3].items()})
                if envelope:
                    res[cname] += ({n: e[i:i + 1] for n, e in r[4].items()},)
                continue
        res[cname] = run_case(wrapped, x)
        if envelope:
            res[cname] += (kink_envelope(wrapped, x, res[cname][2], res[cname][3]),)
    return [res[c] for c, _ in cases]


def leaves_envelope(g32, grads, env):
    """True when a float32 gradient breaks test_oracle's criterion anywhere (beyond
    GRAD_TOL * max|ref| + envelope)."""
    for n, g in grads.items():
        tol = GRAD_TOL * g.abs().max().item()
        if not bool(((g32[n].double() - g).abs() <= tol + env[n]).all()):
            return True
    return False


def answerable_results(wrapped, cases, name, size, tries=4):
    """run_cases in float32 and in float64 (with envelope). A random case on which PyTorch's own
    float32 gradient leaves the kink envelope is one no float32 implementation can be held to:
    some unit sits on a kink that float32 arithmetic resolves the other way whatever the order
    of its sums (seen on resnet18's randn4: PyTorch and camd agree to 3 digits, both 4e-2 away
    from float64). Such a random input is redrawn (up to `tries` times), independently of camd;
    the photos are kept and must pass as they are. Leaves the model in float32."""
    gen = torch.Generator().manual_seed(zlib.crc32(name.encode()) + 3)
    f32, f64 = [None] * len(cases), [None] * len(cases)
    todo = list(range(len(cases)))
    for attempt in range(tries + 1):
        sub = [cases[i] for i in todo]  # random cases are never slices of another case
        wrapped.float()
        for i, r in zip(todo, run_cases(wrapped, sub)):
            f32[i] = r
        wrapped.double()
        for i, r in zip(todo, run_cases(wrapped, sub, envelope=True)):
            f64[i] = r
        wrapped.float()
        todo = [i for i in todo if cases[i][0].startswith("randn") and
                leaves_envelope(f32[i][3], f64[i][3], f64[i][4])]
        if not todo or attempt == tries:
            return f32, f64
        for i in todo:
            cname, x = cases[i]
            print(f"{name}/{cname}: PyTorch's float32 gradient leaves the kink envelope; "
                  "redrawing the random input", flush=True)
            cases[i] = (cname, torch.randn(x.shape, generator=gen))


def token_gradcam(act, grad, grid):
    """Grad-CAM of a token map as pytorch-grad-cam computes it with its ViT reshape_transform:
    tokens[:, 1:] reshaped to N x grid x grid x C and moved to N x C x grid x grid; weights =
    spatial mean of the gradient per channel; map = sum_c w_c * A_c (raw: before ReLU and
    normalisation), N x grid x grid."""
    n, c = act.shape[0], act.shape[2]
    a = act[:, 1:, :].reshape(n, grid, grid, c).permute(0, 3, 1, 2)
    g = grad[:, 1:, :].reshape(n, grid, grid, c).permute(0, 3, 1, 2)
    w = g.mean(dim=(2, 3), keepdim=True)
    return (w * a).sum(dim=1)


def nhwc_gradcam(act, grad):
    """Grad-CAM of an N x H x W x C map as pytorch-grad-cam computes it with its Swin
    reshape_transform (permute to N x C x H x W): weights = spatial mean of the gradient per
    channel; map = sum_c w_c * A_c (raw: before ReLU and normalisation), N x H x W."""
    a, g = act.permute(0, 3, 1, 2), grad.permute(0, 3, 1, 2)
    w = g.mean(dim=(2, 3), keepdim=True)
    return (w * a).sum(dim=1)


def compare(a, ref):
    """max|a-ref| / max|ref|, ||a-ref|| / ||ref||, fraction of elements off by > 1e-3 max|ref|."""
    a, ref = a.double(), ref.double()
    d = (a - ref).abs()
    m = ref.abs().max().item()
    return dict(max_rel=(d.max().item() / max(m, 1e-300)),
                rel_l2=((a - ref).norm() / max(ref.norm().item(), 1e-300)).item(),
                frac_over=(d > 1e-3 * m).double().mean().item())


def finite_difference_check(w64, x, cls, acts, grads):
    """float64 autograd vs a float64 central finite difference of d logit[cls] / d layer along
    one random direction per layer. Returns the worst relative difference."""
    x64 = x.double()
    gen = torch.Generator().manual_seed(7)
    worst = 0.0
    try:
        for name in w64.names:
            act, g = acts[name], grads[name]
            scale = max(1.0, act.abs().max().item())
            # A ReLU/ReLU6/max-pool kink crossed by the step spoils one direction or step size
            # by chance; a wrong gradient spoils all of them. Up to 3 directions x 3 steps.
            fails = []
            for _ in range(3):
                # Exact zeros (ReLU'd units) stay put: a max-pool window of tied zeros is a kink
                # at the evaluation point itself, where only the tie-break rule defines autograd.
                d = torch.randn(act.shape, generator=gen, dtype=torch.float64) * (act != 0)
                d = d / d.norm()
                analytic = (g * d).sum().item()
                for h in (1e-5 * scale, 1e-6 * scale, 1e-7 * scale):
                    with torch.no_grad():
                        w64.perturb = {name: h * d}
                        fp = w64(x64)[0][:, cls].sum().item()
                        w64.perturb = {name: -h * d}
                        fm = w64(x64)[0][:, cls].sum().item()
                    w64.perturb = {}
                    numeric = (fp - fm) / (2 * h)
                    rel = abs(numeric - analytic) / max(abs(numeric), abs(analytic), 1e-300)
                    if rel <= 1e-4:
                        break
                    fails.append(f"step {h:.1e}: finite difference {numeric:.9g} vs autograd "
                                 f"{analytic:.9g} (rel {rel:.2e})")
                if rel <= 1e-4:
                    break
            else:
                raise RuntimeError(f"gradient self-check failed for {name}: " + "; ".join(fails))
            worst = max(worst, rel)
    finally:
        w64.perturb = {}
    return worst


def generate(name, out_root, selfcheck, force):
    spec = SPECS[name]
    size = spec.get("size", 224)
    d = os.path.join(out_root, name)
    meta_path = os.path.join(d, "meta.json")
    shash = SCRIPT_HASH
    if not force and os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                old = json.load(f)
            files = [os.path.join(d, "model.onnx")]
            for c in old["cases"]:
                files += [os.path.join(d, c["input"]), os.path.join(d, c["logits"])]
                for l in c["layers"].values():
                    files += [os.path.join(d, l[k]) for k in ("act", "grad", "grad_env", "gradcam")
                              if k in l]
            if old.get("script_hash") == shash and all(os.path.exists(p) for p in files):
                print(f"{name}: cached ({d})", flush=True)
                return 0.0
        except (OSError, ValueError, KeyError):
            pass
    t0, cpu0 = time.time(), time.process_time()
    os.makedirs(d, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)  # meta.json is written last: its presence marks a complete set

    model = build(name, spec)
    wrapped = Wrapped(model, spec).eval()
    for p in wrapped.parameters():
        p.requires_grad_(False)

    # The hooks must not change the result: compare with the plain model.
    probe = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        outs = wrapped(probe)
        if spec.get("forward") is None:
            plain = model(probe)
            if not torch.equal(plain, outs[0]):
                raise RuntimeError(f"{name}: wrapper changed the logits")
    meta = {
        "model": name,
        "script_hash": shash,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "opset": spec.get("opset", 13),
        "dynamic_batch": spec.get("dynamic", True),
        "onnx": "model.onnx",
        "input": {"name": "input", "shape": [1, 3, size, size]},
        "logits": {"name": "logits", "shape": list(outs[0].shape)},
        "layers": [{"name": n, "shape": list(outs[1 + i].shape)}
                   for i, n in enumerate(wrapped.names)],
        "cases": [],
    }
    if "suggested" in spec:
        meta["suggested_layer"] = spec["suggested"]
    tokens = spec.get("tokens", {})
    for l in meta["layers"]:
        if l["name"] in tokens:
            grid = size // tokens[l["name"]]
            if len(l["shape"]) != 3 or l["shape"][1] != 1 + grid * grid:
                raise RuntimeError(f"{name}: layer {l['name']} is not a class token + "
                                   f"{grid}x{grid} token map: {l['shape']}")
            l["tokens"] = {"grid": [grid, grid], "prefix": 1}
        elif l["name"] in spec.get("nhwc", ()):
            if len(l["shape"]) != 4 or l["shape"][1] * l["shape"][2] <= 1:
                raise RuntimeError(f"{name}: layer {l['name']} is not an N x H x W x C map: "
                                   f"{l['shape']}")
            l["layout"] = "NHWC"
        elif len(l["shape"]) != 4 or l["shape"][2] * l["shape"][3] <= 1:
            raise RuntimeError(f"{name}: layer {l['name']} is not a 4-D feature map: {l['shape']}")

    t_export = time.time()
    onnx_path = os.path.join(d, "model.onnx")
    export(wrapped, spec, size, onnx_path)
    t_export = time.time() - t_export

    # References are computed in float64 (the exact answer, rounded once to float32); PyTorch's
    # own float32 result is compared with it and recorded as "torch_f32": what a correct float32
    # implementation achieves on this model (ReLU/max-pool kinks make a few gradients jump).
    t_ref = time.time()
    stats = []
    fd_worst = None
    cases = make_cases(name, size)
    f32, f64 = answerable_results(wrapped, cases, name, size)
    wrapped.double()
    try:
        for (cname, x), (l32, a32, c32, g32), (logits, acts, cls, grads, env) in zip(
                cases, f32, f64):
            if cls != c32:
                raise RuntimeError(f"{name}/{cname}: float32 and float64 disagree on the class")
            # Batch-1 cases cover every input (photos2 is chelsea + astronaut).
            sens = (float32_sensitivity(wrapped, x, (logits,) + tuple(acts[n] for n in wrapped.names))
                    if x.shape[0] == 1 else None)
            if sens is not None and sens > SENSITIVITY_MAX:
                raise RuntimeError(f"{name}/{cname}: the fixture is ill-conditioned: moving the "
                                   f"parameters by float32 rounding changes the outputs by "
                                   f"{sens:.1e} (relative; limit {SENSITIVITY_MAX:g})")
            case = {"name": cname, "batch": x.shape[0], "class": cls,
                    "float32_sensitivity": sens,
                    "input": f"{cname}.input.bin", "logits": f"{cname}.logits.bin",
                    "logits_max_abs": logits.abs().max().item(),
                    "torch_f32": {"logits": compare(l32, logits)}, "layers": {}}
            write_f32(os.path.join(d, case["input"]), x)
            write_f32(os.path.join(d, case["logits"]), logits.float())
            for n in wrapped.names:
                a, g = acts[n], grads[n]
                if not torch.isfinite(a).all() or not torch.isfinite(g).all():
                    raise RuntimeError(f"{name}/{cname}: non-finite values in {n}")
                if g.abs().max().item() == 0.0:
                    raise RuntimeError(f"{name}/{cname}: zero gradient at {n}")
                act_f = f"{cname}.{safe(n)}.act.bin"
                grad_f = f"{cname}.{safe(n)}.grad.bin"
                env_f = f"{cname}.{safe(n)}.grad_env.bin"
                write_f32(os.path.join(d, act_f), a.float())
                write_f32(os.path.join(d, grad_f), g.float())
                write_f32(os.path.join(d, env_f), env[n].float())
                tol = GRAD_TOL * g.abs().max().item()
                case["layers"][n] = {"act": act_f, "grad": grad_f, "grad_env": env_f,
                                     "act_max_abs": a.abs().max().item(),
                                     "grad_max_abs": g.abs().max().item(),
                                     "grad_env_frac": (env[n] > tol).double().mean().item()}
                gc = compare(g32[n], g)
                # The criterion test_oracle applies, applied to PyTorch's own float32 result.
                gc["within_envelope"] = bool(((g32[n].double() - g).abs() <= tol + env[n]).all())
                if not gc["within_envelope"]:
                    print(f"warning: {name}/{cname}: PyTorch float32 gradient at {n} leaves the "
                          "kink envelope", flush=True)
                case["torch_f32"][n] = {"act": compare(a32[n], a), "grad": gc}
                if n in tokens:
                    cam_f = f"{cname}.{safe(n)}.gradcam.bin"
                    write_f32(os.path.join(d, cam_f), token_gradcam(a, g, size // tokens[n]))
                    case["layers"][n]["gradcam"] = cam_f
                elif n in spec.get("nhwc", ()):
                    cam_f = f"{cname}.{safe(n)}.gradcam.bin"
                    write_f32(os.path.join(d, cam_f), nhwc_gradcam(a, g))
                    case["layers"][n]["gradcam"] = cam_f
            meta["cases"].append(case)
            worst = max(case["torch_f32"][n]["grad"]["max_rel"] for n in wrapped.names)
            envf = max(case["layers"][n]["grad_env_frac"] for n in wrapped.names)
            sens_text = f" f32-sensitivity {sens:.1e}" if sens is not None else ""
            stats.append(f"{cname}: class {cls} |logits| {case['logits_max_abs']:.3g}{sens_text}"
                         f" torch-f32-grad-err {worst:.1e} kink-envelope {100 * envf:.2f}%")
            if selfcheck and cname == "randn1":
                fd_worst = finite_difference_check(wrapped, x, cls, acts, grads)
    finally:
        wrapped.float()
    t_ref = time.time() - t_ref

    t_check = time.time()
    nodes, ops = check_onnx(onnx_path, meta)
    t_check = time.time() - t_check
    meta["onnx_nodes"] = nodes
    meta["onnx_ops"] = ops
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + ".tmp", meta_path)
    took = time.time() - t0
    fd = f", autograd vs finite-diff {fd_worst:.1e}" if fd_worst is not None else ""
    cpu = time.process_time() - cpu0
    print(f"{name}: {took:.1f}s wall, {cpu:.1f}s cpu (export {t_export:.1f}s, reference {t_ref:.1f}s, "
          f"onnx check {t_check:.1f}s{fd}); {nodes} nodes, opset {meta['opset']}, "
          f"{'dynamic' if meta['dynamic_batch'] else 'static'} batch; " + "; ".join(stats),
          flush=True)
    return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, help="output directory (one sub-directory per model)")
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS),
                    help="comma-separated list (default: all): " + ",".join(DEFAULT_MODELS))
    ap.add_argument("--no-selfcheck", action="store_true",
                    help="skip the float64 finite-difference gradient check")
    ap.add_argument("--force", action="store_true", help="regenerate even if cached")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(",") if m]
    unknown = [m for m in models if m not in SPECS]
    if unknown:
        print("unknown model(s): " + ", ".join(unknown) + "; known: " + ", ".join(SPECS),
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    t0, cpu0 = time.time(), time.process_time()
    for m in models:
        generate(m, args.out, not args.no_selfcheck, args.force)
    print(f"oracle: {len(models)} model(s) in {time.time() - t0:.1f}s wall, "
          f"{time.process_time() - cpu0:.1f}s cpu -> {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
