#!/usr/bin/python3
# CAM reference generator: exports torchvision models to ONNX and writes PyTorch reference maps for every CAM method.
"""Writes, per model, DIR/<model>/{model.onnx, input.bin, meta.json, <case>.ref.bin}.

Models are built by tests/oracle/gen_oracle.py's build() (seeded random weights, randomised
BatchNorm statistics) and exported with the target layers as named extra outputs and a dynamic
batch. The input is skimage's chelsea.png resized to 224 × 224, ImageNet mean/std.

Every reference map is computed here, independently of camd, from the papers' formulas (as
pytorch-grad-cam implements them, conventions below) with PyTorch autograd in float64:
activations and gradients come from forward hooks on the torchvision modules, the CAM weights
from the model's own nn.Linear, Ablation-CAM scores from the torchvision head modules, Score-CAM
masks from torch.nn.functional.interpolate. A map is written raw (before ReLU and
normalisation), float32, n_classes × h × w, for the two top classes of the image.

Conventions (the same ones camd documents in src/cam):
  * eigen projection: centred (hw × C) matrix, numpy SVD, projection on the first right
    singular vector; sign chosen so that the projection correlates non-negatively with the
    un-projected map (sum over channels), ties: largest-magnitude entry positive.
  * Score-CAM: bilinear upsampling with align_corners=False; masks (m-min)/(max-min+1e-8);
    weights = softmax over channels of the masked inputs' scores.
  * SS-CAM: score averaged over n_samples noisy masked inputs x*M_k + eps_s (eps_s shared by all
    channels); IS-CAM: score averaged over x*(i/n)*M_k, i=1..n; both then softmax as Score-CAM.
  * Ablation-CAM: channel set to zero; weight (s - s_k) / s.
  * Smooth Grad-CAM++: mean of the Grad-CAM++ maps of x + eps_s.
  * Noise: camd_rng (splitmix64 + Box-Muller, src/core/util.c) reimplemented below, seeded with
    the case's seed, drawn sample by sample in NCHW order, eps = float32(std * normal).
  * FinerCAM: Grad-CAM of pytorch-grad-cam's FinerWeightedTarget, differentiated through its
    softmax weights: sum_k p_k (z_c - alpha z_k) / (sum_k p_k + 1e-9), alpha 1, the 3 classes
    k != c nearest z_c in logit (stable sort: ties lower index first); a case's finer_alpha and
    finer_compare replace alpha and 3.
  * ShapleyCAM: weights = spatial mean of g - 0.5 * H.A, H.A by double backward (autograd's
    Hessian-vector product along the activation, create_graph=True; None -> 0).
  * KPCA-CAM: centred (hw x C) rows, RBF kernel exp(-gamma |xi - xj|^2), gamma 1/C
    (scikit-learn's default) or the case's gamma, double-centred kernel matrix, numpy eigh, top eigenvector * sqrt(eigenvalue)
    (KernelPCA.fit_transform), sign as the eigen projection.
  * Guided backpropagation: a float64 copy of the model whose nn.ReLU modules are replaced by
    a ReLU whose backward passes grad where input > 0 and grad > 0 (pytorch-grad-cam's
    GuidedBackpropReLU), the gradient of the score at the input, max over channels of |.|.
    Guided Grad-CAM: that times the Grad-CAM map ReLU'd, scaled (m - min) / (max - min + 1e-7)
    and resized with F.interpolate(bilinear, align_corners=False) to the input.
  * FullGrad (Srinivas & Fleuret 2019, pytorch-grad-cam's FullGrad): a float64 copy of the model
    whose Conv2d / BatchNorm2d outputs are captured by forward hooks (the network continues on a
    clone, so in-place ops downstream do not touch them); with g = d score / d (input, outputs):
    sum over input channels of S(|x * g_x|) + sum over biased layers of the sum over channels of
    resize(S(|b * g|)), S(m) = (m - min) / (max - min + 1e-7) per channel plane, resize =
    F.interpolate(bilinear, align_corners=False) to the input, channel by channel. Biased layers
    as camd reads them after folding BatchNorm into the Conv before it: a BatchNorm2d's bias is
    beta - mean * gamma / sqrt(var + eps) (+ a * conv bias when the Conv2d registered just before
    it has one: the folded bias; that Conv2d then has no term of its own); every other Conv2d
    with a bias has its own term. The models here have no Conv2d with a bias before a BatchNorm2d,
    so these are exactly pytorch-grad-cam's terms. The CAM layer is not used.
  * Several layers ("a,b"): each layer's raw maps ReLU'd, scaled (m - min) / (max - min + 1e-7),
    resized to the input with F.interpolate(bilinear, align_corners=False), averaged, and the
    average scaled the same way (pytorch-grad-cam's compute_cam_per_layer and
    aggregate_multi_layers; it resizes with cv2.INTER_LINEAR, the same half-pixel bilinear).
  * Poly-CAM (Englebert et al., ICPR 2022, arXiv 2204.13359; methods polycam-plus / -minus /
    -plusminus = the paper's PCAM+ / PCAM- / PCAM+-), written from the paper's definitions:
    per layer (a comma list in forward order) and channel k, Norm(A_k) = (A_k - min) / (max -
    min) at the layer's resolution (0 when constant), mask M_k = F.interpolate(bilinear,
    align_corners=False) of it to the input; with s the case's score (the paper: softmax),
    PCAM+ w_k = s(x * M_k), PCAM- w_k = ReLU(s(x) - s(x * (1 - M_k))), PCAM+- w_k = ReLU(s(x *
    M_k) + s(x) - s(x * (1 - M_k))); the layer's map L = ReLU(sum_k w_k A_k); from the deepest
    layer up P = L_deepest, P = ReLU(L / max(up(down(L)), 1e-12) * up(P)), down / up
    F.interpolate(bilinear, align_corners=False) to the coarser layer's size and back (the
    paper's local normalisation LNorm: the mean of L over each coarse cell). The map is P at
    the first layer's resolution. All forwards in float64.
  * aug_smooth: {flip, no flip} × {0.9, 1, 1.1} on the normalised input; raw maps flipped back
    and averaged.

Kink envelope (the oracle suite's unit-flip envelope, gen_oracle.py, ported): a map read through
ReLU kinks depends on which units whose exact input lies within float32 rounding of 0 come out
on which side, and that depends on the kernels' summation order (camd's im2col vs oneDNN,
AVX-512 vs AVX2): resnet50's guided maps were 0.4-0.85 of the tolerance depending on them. For
such a case the generator writes <case>.kink.bin (float32, the reference's shape): per pixel, how
far those flips may move the min-max normalised map (Ref.guided, Ref.kink_envelope: each unit
within gen_oracle.KINK_DELTA of 0, relative to its call's largest input, flipped alone in an
exact float64 guided backward, the |changes| summed, carried through the normalisation), and
meta.json names it ("kink_env", with "kink_units" and "kink_env_max"). test_cam allows a
difference of 1e-3 plus the envelope at its pixel. Cases without kinks between their layer and
the score keep the flat 1e-3 (the gradient methods at the layers here: nothing but pooling and
linear layers after them). Now: resnet50's guidedbackprop and guidedgradcam (142 fragile units;
the envelope is below 1e-3 at 99.7 % of the pixels, at most ~1e-2).

Run: /usr/bin/python3 tests/cam/gen_cam_refs.py --out DIR [--models resnet50,vgg16]
"""

import argparse
import copy
import hashlib
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "oracle"))
import gen_oracle  # noqa: E402  (build(): seeded weights and randomised BatchNorm)

GRAD_METHODS = ["gradcam", "hirescam", "gradcam-elementwise", "gradcam++", "xgradcam",
                "layercam", "eigengradcam"]


def densenet_forward(model, x, capture):
    a = capture("features_relu", F.relu(model.features(x)))
    return model.classifier(torch.flatten(F.adaptive_avg_pool2d(a, (1, 1)), 1))


# main: the layer most methods use; mid: an optional inner layer for the gradient methods. None
# is set: on these seeded models and this image, inner-layer maps are ill-conditioned (PyTorch's
# own float64 hirescam map at resnet50 layer3 moves by 1.7e-2 between 1 and 2 torch threads:
# ReLU kinks), so they cannot serve as 1e-3 references; vgg16's features.29 (max-pool + MLP
# after it) covers gradients that vary over positions; linear: the nn.Linear after global average pooling (for
# `cam`), None when the model has none; score_layer: a small layer for the Score-CAM family and
# Ablation-CAM (one backbone forward per channel / per batch of channels).
MODELS = {
    # no_kpca: layer4's rows are far apart compared with C on this seeded model, so the RBF
    # kernel (gamma 1/C) is nearly the identity and its top component is not determined to 1e-3.
    # fullgrad: the scores FullGrad is checked with (densenet121 and efficientnet_b0). FullGrad
    # reads every layer's gradient down to the input, so it sees every ReLU kink, and units a
    # hair from theirs flip with the kernels' float32 summation order: not on resnet50, where
    # one ReLU input of layer2 (channel 211 at 13, 11 of the 28 x 28 map) is 6.8e-8 of its
    # layer's largest value from the kink and the logit map moves by 1.09e-3 (class 815) with
    # camd's im2col kernels, the softmax map 3.4e-4 with them and 8.5e-4 with oneDNN's; not on
    # mobilenet_v2 (ReLU6 kinks): 7.8e-4 with im2col, 1.01e-3 with oneDNN. densenet121: 1.5e-6
    # im2col / 1.9e-4 oneDNN; efficientnet_b0 4.9e-6 / 4.5e-6 (tol 1e-3).
    # polycam: Poly-CAM's layer list and variants; on mobilenet_v2 only (three layers, 72
    # channels): resnet50's stem pair alone (relu, maxpool: 128 channels, one float64 ResNet-50
    # forward each) took 8 of the CAM suite's generation minutes, over the default tier's budget.
    "resnet50": dict(main="layer4", linear=lambda m: m.fc, extra="eigen", newer="no_kpca",
                     guided=True),
    "densenet121": dict(main="features_relu", capture_only=True, forward=densenet_forward,
                        linear=lambda m: m.classifier, extra="eigen", fullgrad=["logit"]),
    "mobilenet_v2": dict(main="features", linear=lambda m: m.classifier[1], ablation=True,
                         score_layer="features.1", score_methods=["scorecam", "sscam", "iscam"],
                         smooth=True, extra="scores", newer=True,
                         # 0.25 / C: the map moves by 4.5e-2 from gamma = 1 / C (eigenvalue
                         # ratio 1.32; on vgg16 gamma barely moves the map: 4.6e-4 at 2 / C)
                         kpca_gamma=1.953125e-4,
                         polycam=("features.1,features.3,features.6",
                                  ["polycam-plus", "polycam-minus", "polycam-plusminus"])),
    # guided: not on vgg16, where camd's float32 guided gradient at the input differs from this
    # float64 reference by 1.7e-3 after min-max (ReLU kinks on the way to the input; see the
    # methods report for PyTorch's own float32-vs-float64 difference there). fullgrad neither:
    # PyTorch's own float32 FullGrad differs from its float64 one by 2.7e-2 / 5.8e-2 there.
    "vgg16": dict(main="features.29", linear=None, newer=True, finer_options=True),
    # fuse: multi-layer fusion of these layers. (mobilenet_v2's features.1 would not do: camd's
    # gradient there differs from PyTorch's by 3e-3 after min-max, PyTorch's own float32 and
    # float64 by 2e-6; see the methods report.)
    "efficientnet_b0": dict(main="features", linear=lambda m: m.classifier[1], ablation=True,
                            score_layer="features.1", score_methods=["scorecam"], smooth=True,
                            fuse="features,features.1",
                            fuse_methods=["gradcam", "layercam", "eigencam"], fullgrad=["logit"]),
}
DEFAULT_MODELS = list(MODELS)
NOISE = dict(n_samples=3, noise_std=0.3, seed=42)


def layer_names(spec):
    names = [spec[k] for k in ("main", "mid", "score_layer") if spec.get(k)]
    for n in spec["polycam"][0].split(",") if spec.get("polycam") else []:
        if n not in names:
            names.append(n)
    return names


def script_hash():
    h = hashlib.sha256()
    for p in [os.path.abspath(__file__), os.path.abspath(gen_oracle.__file__)]:
        with open(p, "rb") as f:
            h.update(f.read())
    h.update(("torch " + torch.__version__ + " torchvision " + torchvision.__version__).encode())
    return h.hexdigest()


class Tapped(torch.nn.Module):
    """Returns (logits, *layer activations); activations captured by forward hooks on the named
    modules (or by the spec's own forward)."""

    def __init__(self, model, spec, layers):
        super().__init__()
        self.model, self.layers, self.spec = model, layers, spec
        self.acts = {}
        self.edit = {}  # name -> function applied to the captured value (Ablation-CAM)
        mods = dict(model.named_modules())
        for name in layers:
            if name in mods and not spec.get("capture_only"):
                mods[name].register_forward_hook(self._hook(name))

    def capture(self, name, t):
        if name in self.edit:
            t = self.edit[name](t)
        self.acts[name] = t
        return t

    def _hook(self, name):
        return lambda _m, _i, out: self.capture(name, out)

    def forward(self, x):
        self.acts = {}
        fwd = self.spec.get("forward")
        logits = fwd(self.model, x, self.capture) if fwd else self.model(x)
        return (logits,) + tuple(self.acts[n] for n in self.layers)


# ---- camd_rng in numpy (splitmix64 + Box-Muller, exactly as src/core/util.c) ----
GAMMA = np.uint64(0x9E3779B97F4A7C15)


def camd_normals(seed, n):
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + np.arange(1, 2 * n + 1, dtype=np.uint64) * GAMMA
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
    u1, u2 = u[0::2], u[1::2]
    return np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * 3.14159265358979323846 * u2)


def noise_tensors(x32, n, std, seed):
    """n float32 noise tensors shaped like x32 (batch 1), drawn as camd draws them."""
    count = x32.numel()
    nz = (std * camd_normals(seed, n * count)).astype(np.float32)
    return torch.from_numpy(nz.reshape((n,) + tuple(x32.shape[1:])))


# ---- formulas (numpy float64 on one item: A, G are C × h × w) ----
def projection(x):
    c = x.shape[0]
    m = x.reshape(c, -1).T  # hw × C
    mc = m - m.mean(axis=0)
    _, _, vt = np.linalg.svd(mc, full_matrices=False)
    p = mc @ vt[0]
    dot = float(p @ m.sum(axis=1))
    if dot < 0 or (dot == 0 and p[np.argmax(np.abs(p))] < 0):
        p = -p
    return p.reshape(x.shape[1:])


def kernel_projection(x, gamma=None):
    c = x.shape[0]
    gamma = 1.0 / c if gamma is None else gamma
    m = x.reshape(c, -1).T  # hw x C
    mc = m - m.mean(axis=0)
    d2 = ((mc[:, None, :] - mc[None, :, :]) ** 2).sum(-1)
    k = np.exp(-gamma * d2)
    n = k.shape[0]
    one = np.full((n, n), 1.0 / n)
    kc = k - one @ k - k @ one + one @ k @ one
    lam, vec = np.linalg.eigh(kc)
    p = vec[:, -1] * np.sqrt(max(lam[-1], 0.0))
    dot = float(p @ m.sum(axis=1))
    if dot < 0 or (dot == 0 and p[np.argmax(np.abs(p))] < 0):
        p = -p
    return p.reshape(x.shape[1:])


def finer_target(logits, cls, alpha=1.0, n_compare=3):
    z = logits[0]
    zd = z.detach().numpy()
    order = [int(j) for j in np.argsort(np.abs(zd - zd[cls]), kind="stable") if j != cls]
    comp = order[:n_compare]
    prob = torch.softmax(z, dim=-1)
    num = sum(prob[k] * (z[cls] - alpha * z[k]) for k in comp)
    return num / (sum(prob[k] for k in comp) + 1e-9)


class GuidedSites:
    """While active (a with block), records the input of every GuidedReLU call of a forward
    (in call order) and, during a later backward, flips the forward mask (input > 0) of one unit:
    `flip` = (call index, flat index) or None. That is what float32 rounding does to a unit whose
    exact input is within a hair of 0 (see kink_allowance)."""

    active = None

    def __init__(self):
        self.inputs, self.outputs, self.flip = [], [], None

    def __enter__(self):
        GuidedSites.active = self
        return self

    def __exit__(self, *exc):
        GuidedSites.active = None


class GuidedReLUFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        ctx.sites, ctx.site = GuidedSites.active, -1
        if ctx.sites is not None:
            ctx.site = len(ctx.sites.inputs)
            ctx.sites.inputs.append(x.detach())
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        mask = x > 0
        flip = ctx.sites.flip if ctx.sites is not None else None
        if flip is not None and flip[0] == ctx.site:
            mask = mask.clone()
            mask.view(-1)[flip[1]] = ~mask.view(-1)[flip[1]]
        return g * mask.to(g.dtype) * (g > 0).to(g.dtype)


class GuidedReLU(torch.nn.Module):
    def forward(self, x):
        y = GuidedReLUFn.apply(x)
        if GuidedSites.active is not None:
            GuidedSites.active.outputs.append(y)
        return y


def guided_copy(model):
    m = copy.deepcopy(model).double()
    for name, mod in list(m.named_modules()):
        for child_name, child in list(mod.named_children()):
            if isinstance(child, torch.nn.ReLU):
                setattr(mod, child_name, GuidedReLU())
    return m


def fullgrad_layers(model):
    """[(module, per-channel bias as float64 numpy)] for FullGrad, as camd reads the graph after
    BatchNorm folding (see the module docstring)."""
    mods = [m for m in model.modules()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.BatchNorm2d))]
    layers, absorbed = [], set()
    for i, m in enumerate(mods):
        if not isinstance(m, torch.nn.BatchNorm2d):
            continue
        a = (m.weight / torch.sqrt(m.running_var + m.eps)).detach().double()
        b = (m.bias - m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps)).detach()
        b = b.double()
        prev = mods[i - 1] if i > 0 else None
        if isinstance(prev, torch.nn.Conv2d) and prev.bias is not None:
            b = b + a * prev.bias.detach().double()
            absorbed.add(id(prev))
        layers.append((m, b.numpy()))
    for m in mods:
        if isinstance(m, torch.nn.Conv2d) and m.bias is not None and id(m) not in absorbed:
            layers.append((m, m.bias.detach().double().numpy()))
    return layers


def fullgrad_scale(v):
    """S over the last two axes: (v - min) / (max - min + 1e-7) per plane."""
    v = v - v.amin(dim=(-2, -1), keepdim=True)
    return v / (v.amax(dim=(-2, -1), keepdim=True) + 1e-7)


def from_weights(w, a, eigen):
    wa = w[:, None, None] * a
    return projection(wa) if eigen else wa.sum(0)


def grad_map(method, a, g, eigen=False):
    if method == "gradcam":
        return from_weights(g.mean(axis=(1, 2)), a, eigen)
    if method == "gradcam++":
        g2, g3 = g ** 2, g ** 3
        s = a.sum(axis=(1, 2))[:, None, None]
        aij = np.where(g != 0, g2 / (2 * g2 + s * g3 + 1e-6), 0.0)
        return from_weights((np.maximum(g, 0) * aij).sum(axis=(1, 2)), a, eigen)
    if method == "xgradcam":
        s = a.sum(axis=(1, 2))[:, None, None]
        return from_weights((g * a / (s + 1e-7)).sum(axis=(1, 2)), a, eigen)
    if method == "hirescam":
        x = g * a
    elif method == "gradcam-elementwise":
        x = np.maximum(g * a, 0)
    elif method == "layercam":
        x = np.maximum(g, 0) * a
    elif method == "eigengradcam":
        return projection(g * a)
    else:
        raise ValueError(method)
    return projection(x) if eigen else x.sum(0)


def score_of(logits, cls, score):
    if score == "softmax":
        return torch.softmax(logits, dim=-1)[..., cls]
    if score == "sigmoid":
        return torch.sigmoid(logits[..., cls])
    return logits[..., cls]


class Ref:
    """Reference computations for one model. Cases with one forward (gradient methods, cam,
    eigencam) run a float64 copy of the model: the exact answer, rounded once. Cases with many
    forwards (Score-CAM family, Ablation-CAM, Smooth Grad-CAM++, aug_smooth) run the float32
    model, as camd does; their tolerance is far above float32 rounding."""

    def __init__(self, name, model, spec, x32):
        self.name, self.spec, self.x32 = name, spec, x32
        layers = layer_names(spec)
        self.model32 = model
        self.model64 = copy.deepcopy(model).double()
        self.t32 = Tapped(self.model32, spec, layers).eval()
        self.t64 = Tapped(self.model64, spec, layers).eval()
        self.cache = {}

    def forward(self, x32, f64):
        """(logits, {layer: activation}) with the autograd graph kept; the image's float64
        forward is computed once and shared by every case."""
        if f64 and x32 is self.x32 and "fwd" in self.cache:
            return self.cache["fwd"]
        t = self.t64 if f64 else self.t32
        x = (x32.double() if f64 else x32.clone()).requires_grad_(True)
        outs = t(x)
        res = (outs[0], dict(zip(t.layers, outs[1:])))
        if f64 and x32 is self.x32:
            self.cache["fwd"] = res
        return res

    def acts_grads(self, x32, layer, classes, score="logit", f64=True):
        """Activation and per-class gradients (numpy, item 0) at layer for one float32 input."""
        logits, acts = self.forward(x32, f64)
        a = acts[layer]
        grads = []
        for c in classes:
            (g,) = torch.autograd.grad(score_of(logits, c, score).sum(), a, retain_graph=True)
            grads.append(g.detach()[0].double().numpy())
        return a.detach()[0].double().numpy(), grads

    def fullgrad(self, x32, cls, score, f64=True):
        """FullGrad map (input h x w) of class cls for the float32 input x32, in float64 (or in
        the float32 model, for measuring its own rounding)."""
        model, tapped = (self.model64, self.t64) if f64 else (self.model32, self.t32)
        layers = fullgrad_layers(model)
        caps = {}

        def hook(mod, _inp, out):
            caps[id(mod)] = out
            return out.clone()

        handles = [m.register_forward_hook(hook) for m, _ in layers]
        try:
            x = (x32.double() if f64 else x32.clone()).requires_grad_(True)
            logits = tapped(x)[0]
        finally:
            for h in handles:
                h.remove()
        outs = [caps[id(m)] for m, _ in layers]
        grads = torch.autograd.grad(score_of(logits, cls, score).sum(), [x] + outs,
                                    allow_unused=True)
        size = x32.shape[-2:]
        total = fullgrad_scale((x * grads[0]).abs().detach()[0].double()).sum(0)
        for (m, b), g in zip(layers, grads[1:]):
            if g is None:
                continue
            t = fullgrad_scale((torch.from_numpy(b)[:, None, None] * g[0].double()).abs())
            # F.interpolate (bilinear, align_corners=False) of every channel, as the two 1-D
            # interpolation matrices it applies (rows, then columns: the resize is separable),
            # taken from F.interpolate itself on identity matrices.
            rh = F.interpolate(torch.eye(t.shape[1], dtype=t.dtype)[None, None],
                               size=(size[0], t.shape[1]), mode="bilinear",
                               align_corners=False)[0, 0]
            rw = F.interpolate(torch.eye(t.shape[2], dtype=t.dtype)[None, None],
                               size=(size[1], t.shape[2]), mode="bilinear",
                               align_corners=False)[0, 0]
            total = total + torch.einsum("Hh,chw,Ww->HW", rh, t, rw)
        return total.numpy()

    def polycam(self, c, x32):
        """Poly-CAM maps (classes x h0 x w0) of the case's variant over its layer list, float64."""
        names, classes = c["layer"].split(","), c["classes"]
        score = c.get("score", "logit")
        plus = c["method"] in ("polycam-plus", "polycam-plusminus")
        minus = c["method"] in ("polycam-minus", "polycam-plusminus")
        x = x32.double()

        def scores(xin):  # masked inputs (n x 3 x H x W) -> n x classes
            out = []
            for b0 in range(0, xin.shape[0], 16):
                out.append(score_of(self.t64(xin[b0:b0 + 16])[0], classes, score))
            return torch.cat(out)

        def resize(m, size):  # classes x h x w -> classes x size
            return F.interpolate(m[:, None], size=tuple(size), mode="bilinear",
                                 align_corners=False)[:, 0]

        logits, acts = self.forward(x32, True)  # the shared float64 forward (graph kept)
        with torch.no_grad():
            base = score_of(logits.detach(), classes, score)[0]  # classes
            maps = []
            for name in names:
                a = acts[name].detach()[0]  # C x h x w
                lo = a.amin(dim=(1, 2), keepdim=True)
                rng = a.amax(dim=(1, 2), keepdim=True) - lo
                norm = torch.where(rng > 0, (a - lo) / torch.where(rng > 0, rng, 1), 0.0)
                mask = F.interpolate(norm[:, None], size=x32.shape[-2:], mode="bilinear",
                                     align_corners=False)  # C x 1 x H x W

                def masked_scores(inverse, name=name, mask=mask):
                    # C x classes, computed once per layer and side (shared by the variants)
                    key = ("polycam", name, score, tuple(classes), inverse)
                    if key not in self.cache:
                        self.cache[key] = scores(x * (1 - mask) if inverse else x * mask)
                    return self.cache[key]

                w = torch.zeros(a.shape[0], len(classes), dtype=torch.float64)
                if plus:
                    w = w + masked_scores(False)
                if minus:
                    w = torch.relu(w + base[None, :] - masked_scores(True))
                maps.append(torch.relu(torch.einsum("kt,khw->thw", w, a)))
            p = maps[-1]
            for m in reversed(maps[:-1]):
                local = resize(resize(m, p.shape[-2:]), m.shape[-2:]).clamp(min=1e-12)
                p = torch.relu(m / local * resize(p, m.shape[-2:]))
        return p.numpy()

    def logits(self, x32):
        with torch.no_grad():
            return self.t64(x32.double())[0]

    def guided(self, c, x32, envelope=False):
        """([(map, envelope)] per class, number of fragile units) of a guidedbackprop /
        guidedgradcam case: the map (input h x w) and, with envelope, how much float32 ReLU
        flips may move it per pixel (else None): the sum over fragile units (guided ReLU inputs
        within KINK_DELTA * max|input of the call| of 0, as the oracle's unit-flip envelope) of
        |map with that unit's forward mask flipped - map|, each flip an exact guided backward of
        the float64 model (a bound for any subset flipping, to first order). A unit whose
        guided output gradient is <= 0 passes nothing either way and is skipped. Guided Grad-CAM
        multiplies the guided map by a kink-free Grad-CAM map (>= 0): its envelope is the guided
        one times that map."""
        method, score = c["method"], c.get("score", "logit")
        gm = guided_copy(self.model32).eval()
        x = x32.double().requires_grad_(True)
        with GuidedSites() as sites:
            out = gm(x)
        fragile = []
        for k, z in enumerate(sites.inputs):
            reach = 1e-300 + gen_oracle.KINK_DELTA * z.abs().max().item()
            idx = ((z.abs() <= reach) & (z != 0)).flatten().nonzero().flatten()
            fragile += [(k, int(i)) for i in idx]
        res = []
        for cl in c["classes"]:
            up = 1.0
            if method == "guidedgradcam":
                cam = np.maximum(self.case(dict(c, method="gradcam", classes=[cl]), x32)[0], 0)
                cam = cam - cam.min()
                cam = cam / (1e-7 + cam.max())
                up = F.interpolate(torch.from_numpy(np.ascontiguousarray(cam))[None, None],
                                   size=x32.shape[-2:], mode="bilinear",
                                   align_corners=False)[0, 0].numpy()

            def guided_map():
                (g,) = torch.autograd.grad(score_of(out, cl, score).sum(), x, retain_graph=True)
                return g[0].abs().max(dim=0).values.numpy()

            gb = guided_map()
            env = None
            key = ("guided_env", cl, score)
            if envelope and key not in self.cache and x32 is self.x32:
                gouts = torch.autograd.grad(score_of(out, cl, score).sum(), sites.outputs,
                                            retain_graph=True, allow_unused=True)
                moved = np.zeros_like(gb)
                for k, i in fragile:
                    if gouts[k] is None or gouts[k].reshape(-1)[i] <= 0:
                        continue
                    sites.flip = (k, i)
                    try:
                        moved += np.abs(guided_map() - gb)
                    finally:
                        sites.flip = None
                self.cache[key] = moved
            if envelope:
                env = self.cache[key] * up
            res.append((gb * up, env))
        return res, len(fragile)

    def kink_envelope(self, c, maps):
        """Per-pixel allowance (n_classes x h x w, in min-max normalised units) that test_cam
        adds to its tolerance for case c (reference maps `maps`), or None for a case without
        kinks between its layer and the score (the gradient methods at the layers here) or run
        in float32 (multi-forward methods). From the map envelope e of `guided`, for each
        normalisation of test_cam (plain, and after ReLU: |relu(a) - relu(b)| <= |a - b|): the
        minimum moves by at most dlo = max(min(m + e) - min m, min m - min(m - e)), the maximum
        by dhi likewise, the range R by dR = dlo + dhi, so
        |norm(m')_i - norm(m)_i| <= (e_i + dlo + norm(m)_i * dR) / (R - dR)."""
        if c["method"] not in ("guidedbackprop", "guidedgradcam") or c.get("aug_smooth"):
            return None, 0
        res, n_fragile = self.guided(c, self.x32, envelope=True)
        allow = np.zeros_like(maps, dtype=np.float64)
        for k, ((_, e), ref) in enumerate(zip(res, maps)):
            for r in (ref.astype(np.float64), np.maximum(ref, 0).astype(np.float64)):
                lo, hi = r.min(), r.max()
                dlo = max((r + e).min() - lo, lo - (r - e).min())
                dhi = max((r + e).max() - hi, hi - (r - e).max())
                rng, d_rng = hi - lo, dlo + dhi
                if rng <= d_rng:
                    allow[k] = np.inf
                    continue
                n = (r - lo) / rng
                allow[k] = np.maximum(allow[k], (e + dlo + n * d_rng) / (rng - d_rng))
        return allow, n_fragile

    def case(self, c, x32=None):
        """Raw maps (n_classes × h × w) for case c on input x32 (default: the image)."""
        x32 = self.x32 if x32 is None else x32
        if c.get("aug_smooth"):
            acc = None
            for flip in (True, False):
                for mult in (0.9, 1.0, 1.1):
                    xa = x32 * np.float32(mult)
                    if flip:
                        xa = torch.flip(xa, dims=[3])
                    m = self.case(dict(c, aug_smooth=False, f32=True), xa)
                    if flip:
                        m = m[:, :, ::-1]
                    acc = m / 6.0 if acc is None else acc + m / 6.0
            return acc
        if c["method"].startswith("polycam"):
            return self.polycam(c, x32)
        if "," in c["layer"]:
            def scale(m):
                m = m - m.min(axis=(1, 2), keepdims=True)
                return m / (1e-7 + m.max(axis=(1, 2), keepdims=True))
            acc = 0
            names = c["layer"].split(",")
            for name in names:
                m = scale(np.maximum(self.case(dict(c, layer=name), x32), 0))
                up = F.interpolate(torch.from_numpy(np.ascontiguousarray(m))[:, None],
                                   size=x32.shape[-2:], mode="bilinear", align_corners=False)
                acc = acc + up[:, 0].numpy() / len(names)
            return scale(np.maximum(acc, 0))
        method, layer, classes = c["method"], c["layer"], c["classes"]
        eigen = c.get("eigen_smooth", False)
        score = c.get("score", "logit")
        if method in GRAD_METHODS:
            a, grads = self.acts_grads(x32, layer, classes, score, not c.get("f32"))
            return np.stack([grad_map(method, a, g, eigen) for g in grads])
        if method == "smoothgradcam++":
            noise = noise_tensors(x32, c["n_samples"], c["noise_std"], c["seed"])
            maps = 0
            for s in range(c["n_samples"]):
                a, grads = self.acts_grads(x32 + noise[s:s + 1], layer, classes, score, False)
                maps = maps + np.stack([grad_map("gradcam++", a, g, eigen)
                                        for g in grads]) / c["n_samples"]
            return maps
        if method in ("finercam", "shapleycam"):
            logits, acts = self.forward(x32, True)
            a = acts[layer]
            maps = []
            for cl in classes:
                if method == "finercam":
                    (g,) = torch.autograd.grad(
                        finer_target(logits, cl, c.get("finer_alpha", 1.0),
                                     c.get("finer_compare", 3)), a, retain_graph=True)
                    w = g[0].mean(dim=(1, 2))
                else:
                    (g,) = torch.autograd.grad(score_of(logits, cl, score).sum(), a,
                                               retain_graph=True, create_graph=True)
                    hvp = None
                    if g.requires_grad:  # else g does not depend on a: H = 0
                        (hvp,) = torch.autograd.grad(g, a, grad_outputs=a.detach(),
                                                     retain_graph=True, allow_unused=True)
                    if hvp is None:
                        hvp = torch.zeros_like(g)
                    w = (g - 0.5 * hvp)[0].mean(dim=(1, 2))
                maps.append(from_weights(w.detach().numpy(), a.detach()[0].numpy(), eigen))
            return np.stack(maps)
        if method == "fullgrad":
            return np.stack([self.fullgrad(x32, cl, score) for cl in classes])
        if method in ("guidedbackprop", "guidedgradcam"):
            return np.stack([m for m, _ in self.guided(c, x32)[0]])
        an = self.forward(x32, True)[1][layer].detach()[0].numpy()
        if method == "kpcacam":
            p = kernel_projection(an, c.get("gamma"))
            return np.stack([p for _ in classes])
        if method == "eigencam":
            p = projection(an)
            return np.stack([p for _ in classes])
        if method == "cam":
            w = self.spec["linear"](self.model64).weight.detach().numpy()
            return np.stack([from_weights(w[k], an, eigen) for k in classes])
        t = self.t32
        with torch.no_grad():
            logits, a = [o for i, o in enumerate(t(x32)) if i in (0, 1 + t.layers.index(layer))]
        an = a[0].double().numpy()
        if method == "ablationcam":
            nch = an.shape[0]
            weights = np.zeros((len(classes), nch))
            base = score_of(logits.double(), classes, score)[0].numpy()
            with torch.no_grad():
                for c0 in range(0, nch, 16):
                    n = min(16, nch - c0)

                    def zero_one(v, c0=c0, n=n):
                        v = v.clone()
                        v[torch.arange(n), torch.arange(c0, c0 + n)] = 0
                        return v

                    t.edit = {layer: zero_one}
                    try:
                        out = t(x32.repeat(n, 1, 1, 1))[0]
                    finally:
                        t.edit = {}
                    s = score_of(out.double(), classes, score).numpy()  # n × classes
                    weights[:, c0:c0 + n] = ((base[None, :] - s) / base[None, :]).T
            return np.stack([from_weights(weights[k], an, eigen) for k in range(len(classes))])
        if method in ("scorecam", "sscam", "iscam"):
            with torch.no_grad():
                up = F.interpolate(a, size=x32.shape[-2:], mode="bilinear", align_corners=False)
                flat = up.view(up.shape[1], -1)
                mn, mx = flat.min(1)[0], flat.max(1)[0]
                masks = (up[0] - mn[:, None, None]) / (mx - mn + 1e-8)[:, None, None]
                n = 1 if method == "scorecam" else c["n_samples"]
                noise = (noise_tensors(x32, n, c["noise_std"], c["seed"])
                         if method == "sscam" else None)
                scores = torch.zeros(masks.shape[0], len(classes), dtype=torch.float64)
                for r in range(n):
                    if method == "iscam":
                        xin = x32 * (np.float32((r + 1) / n) * masks[:, None])
                    else:
                        xin = x32 * masks[:, None]
                    if noise is not None:
                        xin = xin + noise[r:r + 1]
                    for b0 in range(0, xin.shape[0], 16):
                        lo = t(xin[b0:b0 + 16])[0].double()
                        scores[b0:b0 + 16] += score_of(lo, classes, score) / n
                weights = torch.softmax(scores, dim=0).numpy()  # C × classes
            return np.stack([from_weights(weights[:, k], an, eigen)
                             for k in range(len(classes))])
        raise ValueError(method)


def cases_for(name, spec):
    main = spec["main"]
    cases = []
    if spec.get("linear"):
        cases.append(dict(method="cam", layer=main))
    else:
        cases.append(dict(method="cam", layer=main, expect_error="unsupported"))
    for m in GRAD_METHODS + ["eigencam"]:
        cases.append(dict(method=m, layer=main))
    if spec.get("mid"):
        cases += [dict(method=m, layer=spec["mid"], tag="mid") for m in GRAD_METHODS + ["eigencam"]]
    if spec.get("ablation"):
        # One backbone forward per batch of ablated channels: on the small score layer.
        cases.append(dict(method="ablationcam", layer=spec["score_layer"], max_batch=6))
    if spec.get("smooth"):
        cases.append(dict(method="smoothgradcam++", layer=main, max_batch=2, **NOISE))
    for m in spec.get("score_methods", []):
        cases.append(dict(method=m, layer=spec["score_layer"], max_batch=6, **NOISE))
    if spec.get("extra") == "scores":
        cases += [dict(method="gradcam", layer=main, score="softmax"),
                  dict(method="gradcam", layer=main, score="sigmoid"),
                  dict(method="gradcam", layer=main, aug_smooth=True)]
    if spec.get("newer"):
        cases += [dict(method="finercam", layer=main), dict(method="shapleycam", layer=main),
                  dict(method="shapleycam", layer=main, score="softmax")]
        if spec["newer"] != "no_kpca":
            cases.append(dict(method="kpcacam", layer=main))
        if spec.get("finer_options"):  # the request fields finer_alpha / finer_compare
            cases.append(dict(method="finercam", layer=main, finer_alpha=0.5, finer_compare=2,
                              tag="opts"))
        if spec.get("kpca_gamma"):  # kpcacam's gamma request field
            cases.append(dict(method="kpcacam", layer=main, gamma=spec["kpca_gamma"], tag="gamma"))
    if spec.get("guided"):
        cases += [dict(method="guidedbackprop", layer=main),
                  dict(method="guidedgradcam", layer=main)]
    if spec.get("fuse"):
        cases += [dict(method=m, layer=spec["fuse"], tag="fused") for m in spec["fuse_methods"]]
    cases += [dict(method="fullgrad", layer=main, score=s) for s in spec.get("fullgrad", [])]
    if spec.get("polycam"):  # softmax, as the paper scores; batches of 6 (not a divisor of C)
        cases += [dict(method=m, layer=spec["polycam"][0], score="softmax", max_batch=6)
                  for m in spec["polycam"][1]]
    if spec.get("extra") == "eigen":
        cases += [dict(method="gradcam", layer=main, eigen_smooth=True),
                  dict(method="layercam", layer=main, eigen_smooth=True)]
    for i, c in enumerate(cases):
        tag = c["method"].replace("+", "p")
        for k in ("score", "aug_smooth", "eigen_smooth"):
            if c.get(k) and c[k] != "logit":
                tag += "_" + (c[k] if k == "score" else k)
        if c.get("tag"):
            tag += "_" + c.pop("tag")
        c["name"] = tag
    return cases


def export(tapped, path):
    names = ["logits"] + tapped.layers
    axes = {n: {0: "batch"} for n in ["input"] + names}
    with torch.no_grad():
        torch.onnx.export(tapped, torch.randn(2, 3, 224, 224), path, opset_version=13,
                          do_constant_folding=True, input_names=["input"], output_names=names,
                          dynamic_axes=axes)


def generate(name, out_root, force):
    spec = MODELS[name]
    d = os.path.join(out_root, name)
    meta_path = os.path.join(d, "meta.json")
    shash = script_hash()
    if not force and os.path.exists(meta_path):
        try:
            with open(meta_path) as f:
                old = json.load(f)
            if old.get("script_hash") == shash:
                print(f"{name}: cached ({d})", flush=True)
                return
        except (OSError, ValueError):
            pass
    t0 = time.time()
    os.makedirs(d, exist_ok=True)
    if os.path.exists(meta_path):
        os.remove(meta_path)
    model = gen_oracle.build(name, {})
    for p in model.parameters():
        p.requires_grad_(False)
    layers = layer_names(spec)
    export(Tapped(model, spec, layers).eval(), os.path.join(d, "model.onnx"))
    x32 = gen_oracle.load_photo("chelsea.png", 224).float()
    x32.numpy().astype("<f4").tofile(os.path.join(d, "input.bin"))
    ref = Ref(name, model, spec, x32)
    logits = ref.logits(x32)[0]
    classes = [int(i) for i in torch.topk(logits, 2).indices]
    meta = {"model": name, "script_hash": shash, "onnx": "model.onnx", "input": "input.bin",
            "input_shape": [1, 3, 224, 224], "output": "logits", "classes": classes,
            "cases": []}
    for c in cases_for(name, spec):
        c["classes"] = classes
        t = time.time()
        if "expect_error" not in c:
            maps = ref.case(c)
            if not np.all(np.isfinite(maps)):
                raise RuntimeError(f"{name}/{c['name']}: non-finite reference")
            allow, units = ref.kink_envelope(c, maps)
            if allow is not None:
                c["kink_env"], c["kink_units"] = f"{c['name']}.kink.bin", units
                c["kink_env_max"] = float(allow.max())
                np.ascontiguousarray(allow, dtype="<f4").tofile(os.path.join(d, c["kink_env"]))
            c["ref"] = f"{c['name']}.ref.bin"
            c["shape"] = list(maps.shape)
            np.ascontiguousarray(maps, dtype="<f4").tofile(os.path.join(d, c["ref"]))
        c["seconds"] = round(time.time() - t, 2)
        meta["cases"].append(c)
    with open(meta_path + ".tmp", "w") as f:
        json.dump(meta, f, indent=1)
    os.replace(meta_path + ".tmp", meta_path)
    slow = sorted(meta["cases"], key=lambda c: -c["seconds"])[:3]
    print(f"{name}: {len(meta['cases'])} cases in {time.time() - t0:.1f}s, classes {classes}; "
          "slowest: " + ", ".join(f"{c['name']} {c['seconds']}s" for c in slow), flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--models", default=",".join(DEFAULT_MODELS))
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(max(1, args.threads))
    models = [m for m in args.models.split(",") if m]
    bad = [m for m in models if m not in MODELS]
    if bad:
        print("unknown model(s): " + ", ".join(bad) + "; known: " + ", ".join(MODELS),
              file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    for m in models:
        generate(m, args.out, args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
