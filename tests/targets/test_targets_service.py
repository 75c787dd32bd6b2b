#!/usr/bin/python3
"""Segmentation, embedding and per-image targets through the real server, against PyTorch.

Exports (seeded random weights, BatchNorm statistics randomised) torchvision FCN-ResNet50 and
DeepLabV3-ResNet50 (output 'out' only, N x K x H x W: Resize and dilated convolutions) and a
ResNet-18 with fc = Identity (a 512-d embedding). The reference is Grad-CAM written with PyTorch
autograd (hooks on the layer; weights = mean over H, W of the gradient; map = ReLU(sum_c w_c A_c))
with pytorch-grad-cam's targets:

  SemanticSegmentationTarget  score = sum(output[k] * mask), mask 0/1 on the output grid:
                              argmax == k, a box (pixel centres inside [x0, x1+1) x [y0, y1+1)),
                              or a mask PNG
  SimilarityToConceptTarget   score = cos(embedding, reference)

camd answers with outputs=raw, normalize=none: its raw map must match within 1e-3 of the map's
largest value, the target scores within 1e-4 (relative), and the segmentation's per-class argmax
pixel counts exactly. Also: every new error (mask size, box outside the image, reference length /
NaN / zero, missing or double reference, options that do not apply) with its status, and
per-image targets of KServe instances against the same references.

  /usr/bin/python3 tests/targets/test_targets_service.py CAMD WORKDIR
"""
import base64
import io
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "service"))
import camdtest  # noqa: E402

try:
    import numpy as np
    import onnx
    import torch
    import torchvision
    from PIL import Image
except ImportError as e:
    print(f"test_targets_service: skipped, {e}", file=sys.stderr)
    sys.exit(77)

MAP_TOL = 1e-3
SCORE_TOL = 1e-4
SEG = 96  # segmentation input (and output) size
EMB = 128  # embedding input size (a 4 x 4 layer4 map)
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


class OutOnly(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)["out"]


def randomise_bn(model, seed):
    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            n = mod.num_features
            mod.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
            mod.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            mod.weight.data.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)
            mod.bias.data.copy_(torch.randn(n, generator=g) * 0.1)


def export(model, size, path):
    torch.onnx.export(model, torch.randn(1, 3, size, size), path, input_names=["input"],
                      output_names=["out"], opset_version=17,
                      dynamic_axes={"input": {0: "N"}, "out": {0: "N"}})


def input_of(path, node_name):
    """The ONNX value name feeding node `node_name` (the CAM layer camd is asked for)."""
    for n in onnx.load(path).graph.node:
        if n.name == node_name:
            return n.input[0]
    raise AssertionError(f"{node_name} not in {path}")


def make_seg(work, name, seed):
    torch.manual_seed(seed)
    ctor = getattr(torchvision.models.segmentation, name)
    m = ctor(weights=None, weights_backbone=None, num_classes=4, aux_loss=False)
    randomise_bn(m, seed)
    m = OutOnly(m).eval()
    path = os.path.join(work, name + ".onnx")
    export(m, SEG, path)
    return m, path, input_of(path, "/m/classifier/classifier.0/Conv" if name.startswith("fcn")
                             else "/m/classifier/classifier.0/convs.0/convs.0.0/Conv")


class HalfSeg(torch.nn.Module):
    """A small segmentation net whose output grid is half the input's (3 classes, stride 2)."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.c2 = torch.nn.Conv2d(8, 8, 3, padding=1, stride=2)
        self.act = torch.nn.ReLU()
        self.head = torch.nn.Conv2d(8, 3, 1)

    def forward(self, x):
        return self.head(self.act(self.c2(torch.relu(self.c1(x)))))


def make_half(work):
    torch.manual_seed(8)
    m = HalfSeg().eval()
    path = os.path.join(work, "half.onnx")
    export(m, SEG, path)
    relu = [n for n in onnx.load(path).graph.node if n.op_type == "Relu"][-1]
    return m, path, relu.output[0]


def make_emb(work):
    torch.manual_seed(5)
    m = torchvision.models.resnet18(weights=None)
    m.fc = torch.nn.Identity()
    randomise_bn(m, 5)
    m.eval()
    path = os.path.join(work, "emb.onnx")
    export(m, EMB, path)
    gap = [n for n in onnx.load(path).graph.node if n.op_type == "GlobalAveragePool"][0]
    return m, path, gap.input[0]


def make_image(seed, size):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(6, 6, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((size, size), Image.BILINEAR)
    arr = np.clip(np.asarray(img).astype(np.int32) + rng.integers(-30, 31, size=(size, size, 3)),
                  0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue(), arr


def png_of(mask01):
    buf = io.BytesIO()
    Image.fromarray((mask01 * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def tensor(arr):
    x = (arr.astype(np.float32) * np.float32(1 / 255) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]


def layer_module(model, kind):
    if kind == "emb":
        return model.layer4
    if kind == "half":
        return model.act
    return model.m.backbone.layer4


def gradcam(model, kind, x, target_fn):
    """Grad-CAM of target_fn(output) at the layer: (map, score)."""
    acts = {}

    def hook(_m, _i, out):
        out.retain_grad()
        acts["a"] = out

    h = layer_module(model, kind).register_forward_hook(hook)
    try:
        out = model(x)
        score = target_fn(out[0])
        score.backward()
    finally:
        h.remove()
    a, g = acts["a"][0].detach().double(), acts["a"].grad[0].double()
    w = g.mean(dim=(1, 2))
    return torch.relu((w[:, None, None] * a).sum(0)).numpy(), float(score)


def scorecam(model, x, target_fn):
    """Score-CAM (Wang 2020, pytorch-grad-cam's arithmetic) at model.act of the half-grid net."""
    acts = {}
    h = model.act.register_forward_hook(lambda _m, _i, out: acts.__setitem__("a", out.detach()))
    try:
        with torch.no_grad():
            model(x)
            a = acts["a"][0]
            up = torch.nn.functional.interpolate(a[:, None], size=x.shape[2:], mode="bilinear",
                                                 align_corners=False)[:, 0]
            lo = up.amin(dim=(1, 2), keepdim=True)
            hi = up.amax(dim=(1, 2), keepdim=True)
            masks = (up - lo) / (hi - lo + 1e-8)
            scores = torch.stack([target_fn(model(x * mk[None, None])[0]).double()
                                  for mk in masks])
    finally:
        h.remove()
    w = torch.softmax(scores, 0)
    return torch.relu((w[:, None, None] * a.double()).sum(0)).numpy()


def box_mask(box, size):
    c = np.arange(size) + 0.5  # output pixel centres in image pixels (image = input = output)
    inx = (c >= box[0]) & (c < box[2] + 1)
    iny = (c >= box[1]) & (c < box[3] + 1)
    return (iny[:, None] & inx[None, :]).astype(np.float64)


def raw_map(expl):
    raw = expl["raw"]
    return np.array([np.nan if v is None else v for v in raw["values"]]).reshape(
        raw["height"], raw["width"])


def main():
    camd, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    torch.set_grad_enabled(True)
    fcn, fcn_path, fcn_layer = make_seg(work, "fcn_resnet50", 3)
    dl, dl_path, dl_layer = make_seg(work, "deeplabv3_resnet50", 4)
    emb, emb_path, emb_layer = make_emb(work)
    half, half_path, half_layer = make_half(work)
    seg_entry = {"width": SEG, "height": SEG, "resize": "stretch"}
    cfg = {"listen": "127.0.0.1", "port": 0, "workers": 1, "max_batch": 4, "batch_window_us": 0,
           "models": [dict(name="fcn", path=os.path.basename(fcn_path), default_layer=fcn_layer, **seg_entry),
                      dict(name="deeplab", path=os.path.basename(dl_path), default_layer=dl_layer, **seg_entry),
                      dict(name="half", path="half.onnx", default_layer=half_layer, **seg_entry),
                      {"name": "emb", "path": os.path.basename(emb_path), "width": EMB, "height": EMB,
                       "resize": "stretch", "task": "embedding", "default_layer": emb_layer}]}
    cfg_path = os.path.join(work, "camd.json")
    with open(cfg_path, "w") as f:
        json.dump(cfg, f)
    camdtest.CAMD, camdtest.FIX = camd, work
    chk = camdtest.Checker()
    seg_imgs = [make_image(s, SEG) for s in (1, 2)]
    emb_imgs = [make_image(s, EMB) for s in (3, 4)]
    RAW = "outputs=raw&normalize=none"

    worst = {"map": 0.0, "score": 0.0}

    def close_map(expl, ref, what):
        got = raw_map(expl)
        scale = max(float(np.abs(ref).max()), 1e-12)
        if got.shape == ref.shape:
            worst["map"] = max(worst["map"], float(np.abs(got - ref).max()) / scale)
        ok = got.shape == ref.shape and float(np.abs(got - ref).max()) <= MAP_TOL * scale
        chk.check(ok, f"{what}: map differs: shape {got.shape} vs {ref.shape}, max |diff| "
                      f"{float(np.abs(got - ref).max()) if got.shape == ref.shape else 'n/a'} "
                      f"(scale {scale:.4g})")
        # a map that cannot fail: the reference must not be all zero
        chk.check(float(ref.max()) > 0, f"{what}: the reference map is all zero")

    def close_score(got, ref, what):
        worst["score"] = max(worst["score"], abs(got - ref) / max(1.0, abs(ref)))
        chk.check(abs(got - ref) <= SCORE_TOL * max(1.0, abs(ref)),
                  f"{what}: score {got} vs reference {ref}")

    with camdtest.Server(config=cfg_path) as srv:
        def post(model, body, query="", ctype="image/png"):
            return srv.json("POST", f"/v1/models/{model}/explain?{query}", body,
                            {"Content-Type": ctype})

        # ---- segmentation: argmax (default), box, mask PNG; FCN and DeepLabV3 ----
        for model, tm, name in ((fcn, "fcn", "FCN"), (dl, "deeplab", "DeepLabV3")):
            png, arr = seg_imgs[0]
            x = tensor(arr)
            with torch.no_grad():
                out = tm_out = model(x)[0].double()
            argmax = out.argmax(0).numpy()
            counts = np.bincount(argmax.ravel(), minlength=4)
            top = int(np.lexsort((np.arange(4), -counts))[0])
            st, _, body = post(tm, png, RAW + "&topk=4")
            if not chk.check(st == 200, f"{name} argmax: {st} {body}"):
                continue
            seg = body.get("segmentation", {})
            got_counts = {c["index"]: c["pixels"] for c in seg.get("classes", [])}
            want = {c: int(n) for c, n in enumerate(counts) if n}
            chk.check(got_counts == want, f"{name}: argmax pixels {got_counts} vs {want}")
            chk.check("predictions" not in body, f"{name}: a segmentation answer has no predictions")
            e = body["explanations"][0]
            chk.check(e["index"] == top and e["region"] == {"kind": "argmax",
                                                           "pixels": int(counts[top])},
                      f"{name}: target {e['index']} region {e.get('region')}, want {top}")
            mask = torch.from_numpy((argmax == top).astype(np.float64))
            ref, score = gradcam(model, "seg", x, lambda o: (o[top].double() * mask).sum())
            close_map(e, ref, f"{name} argmax class {top}")
            close_score(e["score"], score, f"{name} argmax score")
            del tm_out

        png, arr = seg_imgs[1]
        x = tensor(arr)
        box = (10, 20, 60, 80)
        for k, method in ((1, "gradcam"), (2, "gradcam")):
            st, _, body = post("fcn", png, f"{RAW}&target={k}&box={','.join(map(str, box))}"
                                           f"&method={method}")
            if chk.check(st == 200, f"box: {st} {body}"):
                e = body["explanations"][0]
                m = torch.from_numpy(box_mask(box, SEG))
                ref, score = gradcam(fcn, "seg", x, lambda o: (o[k].double() * m).sum())
                close_map(e, ref, f"FCN box class {k}")
                close_score(e["score"], score, f"FCN box score class {k}")
                chk.check(e["region"] == {"kind": "box", "pixels": int(m.sum())},
                          f"box region {e['region']}")
                chk.check(body["options"].get("box") == list(box), "box echoed in options")

        rng = np.random.default_rng(9)
        blob = np.zeros((SEG, SEG))
        blob[30:70, 15:50] = 1
        blob[rng.random((SEG, SEG)) < 0.05] = 1
        mpng = png_of(blob)
        m = torch.from_numpy(blob)
        ref, score = gradcam(fcn, "seg", x, lambda o: (o[3].double() * m).sum())
        body_mp, ctype = camdtest.multipart({"target": "3", "outputs": "raw", "normalize": "none"},
                                            {"image": ("x.png", png, "image/png"),
                                             "mask": ("m.png", mpng, "image/png")})
        st, _, body = post("fcn", body_mp, "", ctype)
        if chk.check(st == 200, f"mask part: {st} {body}"):
            e = body["explanations"][0]
            close_map(e, ref, "FCN mask PNG (multipart file part)")
            close_score(e["score"], score, "FCN mask PNG score")
            chk.check(e["region"] == {"kind": "mask", "pixels": int(blob.sum())},
                      f"mask region {e['region']}")
        js = json.dumps({"image": base64.b64encode(png).decode(),
                         "mask": base64.b64encode(mpng).decode(), "target": 3,
                         "outputs": "raw", "normalize": "none"})
        st, _, body = post("fcn", js, "", "application/json")
        if chk.check(st == 200, f"mask base64: {st} {body}"):
            close_map(body["explanations"][0], ref, "FCN mask PNG (JSON base64)")

        # ---- an output grid half the input's: input-sized mask, box through the grid ----
        hs = SEG // 2
        sample = (np.arange(hs) + 0.5) * SEG / hs  # output pixel centres in image pixels
        idx = sample.astype(int)
        m_out = torch.from_numpy(blob[idx][:, idx])
        ref_h, score_h = gradcam(half, "half", x, lambda o: (o[1].double() * m_out).sum())
        js = json.dumps({"image": base64.b64encode(png).decode(), "target": 1,
                         "mask": base64.b64encode(mpng).decode(), "outputs": "raw",
                         "normalize": "none"})
        st, _, body = post("half", js, "", "application/json")
        if chk.check(st == 200, f"half: input-sized mask: {st} {body}"):
            e = body["explanations"][0]
            close_map(e, ref_h, "half-grid model, input-sized mask")
            close_score(e["score"], score_h, "half-grid model, input-sized mask score")
            chk.check(body["segmentation"]["width"] == hs, f"segmentation grid {body['segmentation']}")
        js = json.dumps({"image": base64.b64encode(png).decode(), "target": 1,
                         "mask": base64.b64encode(png_of(blob[idx][:, idx])).decode(),
                         "outputs": "raw", "normalize": "none"})
        st, _, body = post("half", js, "", "application/json")
        if chk.check(st == 200, f"half: output-sized mask: {st} {body}"):
            close_map(body["explanations"][0], ref_h, "half-grid model, output-sized mask")
        inx = (sample >= box[0]) & (sample < box[2] + 1)
        iny = (sample >= box[1]) & (sample < box[3] + 1)
        m_box = torch.from_numpy((iny[:, None] & inx[None, :]).astype(np.float64))
        ref_b, score_b = gradcam(half, "half", x, lambda o: (o[2].double() * m_box).sum())
        st, _, body = post("half", png, f"{RAW}&target=2&box={','.join(map(str, box))}")
        if chk.check(st == 200, f"half: box: {st} {body}"):
            close_map(body["explanations"][0], ref_b, "half-grid model, box")
            close_score(body["explanations"][0]["score"], score_b, "half-grid model, box score")
        # a 2 x 2-pixel box: small scores, so the channel softmax is far from one-hot
        sbox = (40, 40, 43, 43)
        sinx = (sample >= sbox[0]) & (sample < sbox[2] + 1)
        m_sbox = torch.from_numpy((sinx[:, None] & sinx[None, :]).astype(np.float64))
        ref_s = scorecam(half, x, lambda o: (o[2].double() * m_sbox).sum())
        st, _, body = post("half", png,
                           f"{RAW}&target=2&box={','.join(map(str, sbox))}&method=scorecam")
        if chk.check(st == 200, f"half: scorecam box: {st} {body}"):
            close_map(body["explanations"][0], ref_s, "half-grid model, Score-CAM, box")
        odd = base64.b64encode(png_of(np.ones((40, 48)))).decode()
        st, h, body = post("half", json.dumps({"image": base64.b64encode(png).decode(),
                                               "mask": odd}), "", "application/json")
        chk.error(st, h, body, 400, "invalid_argument", "48×48", "half: mask of neither size")

        # ---- segmentation errors ----
        small = png_of(np.ones((50, 40)))
        st, h, body = post("fcn", json.dumps({"image": base64.b64encode(png).decode(),
                                              "mask": base64.b64encode(small).decode()}),
                           "", "application/json")
        chk.error(st, h, body, 400, "invalid_argument", "40×50", "mask of the wrong size")
        st, h, body = post("fcn", json.dumps({"image": base64.b64encode(png).decode(),
                                              "mask": "@@not base64@@"}), "", "application/json")
        chk.error(st, h, body, 400, "bad_base64", "mask", "mask not base64")
        st, h, body = post("fcn", png, "box=10,10,200,20")
        chk.error(st, h, body, 400, "invalid_argument", "inside the image", "box outside")
        st, h, body = post("fcn", png, "box=30,10,20,20")
        chk.error(st, h, body, 400, "invalid_argument", "x0 <= x1", "box reversed")
        st, h, body = post("fcn", png, "box=1,2,3")
        chk.error(st, h, body, 400, "invalid_argument", "x0,y0,x1,y1", "box with 3 numbers")
        st, h, body = post("fcn", json.dumps({"image": base64.b64encode(png).decode(),
                                              "mask": base64.b64encode(png_of(np.zeros((SEG, SEG)))).decode()}),
                           "", "application/json")
        chk.error(st, h, body, 400, "invalid_argument", "covers no pixel", "empty mask")
        st, h, body = post("fcn", png, "score=softmax")
        chk.error(st, h, body, 400, "invalid_argument", "segmentation", "score=softmax on seg")
        st, h, body = post("fcn", png, "method=cam")
        chk.error(st, h, body, 422, "unsupported", "segmentation", "method=cam on seg")
        st, h, body = post("fcn", png, "metrics=deletion")
        chk.error(st, h, body, 422, "unsupported", "segmentation", "quality on seg")
        st, h, body = post("fcn", png, "target=4")
        chk.error(st, h, body, 400, "invalid_argument", "0..3", "seg class out of range")
        st, h, body = post("fcn", png, "mask=biggest")
        chk.error(st, h, body, 400, "bad_base64", "'argmax'", "mask=unknown word")

        # ---- embedding: reference floats, reference image ----
        (png_a, arr_a), (png_b, arr_b) = emb_imgs
        xa, xb = tensor(arr_a), tensor(arr_b)
        ref_vec = np.random.default_rng(21).standard_normal(512).astype(np.float32)
        with torch.no_grad():
            emb_b = emb(xb)[0].clone()
        cos = torch.nn.CosineSimilarity(dim=0)
        ref_a, sim_a = gradcam(emb, "emb", xa, lambda o: cos(o, torch.from_numpy(ref_vec)))
        js = json.dumps({"image": base64.b64encode(png_a).decode(), "reference": ref_vec.tolist(),
                         "outputs": "raw", "normalize": "none"})
        st, _, body = post("emb", js, "", "application/json")
        if chk.check(st == 200, f"embedding reference: {st} {body}"):
            e = body["explanations"][0]
            close_map(e, ref_a, "embedding vs reference floats")
            close_score(e["similarity"], sim_a, "embedding similarity (floats)")
            chk.check(body["embedding"]["size"] == 512 and "predictions" not in body,
                      f"embedding block {body.get('embedding')}")
            with torch.no_grad():
                norm = float(emb(xa)[0].double().norm())
            close_score(body["embedding"]["norm"], norm, "embedding norm")
        ref_ab, sim_ab = gradcam(emb, "emb", xa, lambda o: cos(o, emb_b))
        body_mp, ctype = camdtest.multipart({"outputs": "raw", "normalize": "none"},
                                            {"image": ("a.png", png_a, "image/png"),
                                             "reference_image": ("b.png", png_b, "image/png")})
        st, _, body = post("emb", body_mp, "", ctype)
        if chk.check(st == 200, f"embedding reference_image: {st} {body}"):
            e = body["explanations"][0]
            close_map(e, ref_ab, "embedding vs reference image")
            close_score(e["similarity"], sim_ab, "embedding similarity (image)")
            chk.check(e["region"] == {"kind": "reference_image"}, f"region {e.get('region')}")
        # comma list in the query string
        st, _, body = post("emb", png_a, RAW + "&reference=" + ",".join(f"{v:.9g}" for v in ref_vec))
        if chk.check(st == 200, f"reference in the query: {st}"):
            close_map(body["explanations"][0], ref_a, "embedding reference (query comma list)")

        # ---- embedding errors ----
        def emb_error(fields, status, code, contains, what):
            d = {"image": base64.b64encode(png_a).decode()}
            d.update(fields)
            st, h, body = post("emb", json.dumps(d), "", "application/json")
            chk.error(st, h, body, status, code, contains, what)

        emb_error({"reference": ref_vec[:511].tolist()}, 400, "invalid_argument", "511 values",
                  "short reference")
        emb_error({"reference": ",".join(["1"] * 511 + ["nan"])}, 400, "invalid_argument",
                  "not a finite", "NaN in the reference")
        emb_error({"reference": [0] * 512}, 400, "invalid_argument", "zero", "zero reference")
        emb_error({}, 400, "invalid_argument", "exactly one of reference", "no reference")
        emb_error({"reference": ref_vec.tolist(), "reference_image": base64.b64encode(png_b).decode()},
                  400, "invalid_argument", "exactly one of reference", "two references")
        emb_error({"reference": ref_vec.tolist(), "target": "top2"}, 400, "invalid_argument",
                  None, "target on an embedding")
        emb_error({"reference": ref_vec.tolist(), "box": "1,1,5,5"}, 400, "invalid_argument",
                  "segmentation", "box on an embedding")

        # ---- per-image targets (KServe instances) ----
        inst = {"instances": [
            {"image": {"b64": base64.b64encode(seg_imgs[0][0]).decode()}, "target": 2},
            {"image": {"b64": base64.b64encode(seg_imgs[1][0]).decode()}, "target": "1",
             "box": "10,20,60,80"}],
            "parameters": {"outputs": "raw", "normalize": "none"}}
        st, _, body = post("fcn", json.dumps(inst), "", "application/json")
        if chk.check(st == 200 and len(body.get("predictions", [])) == 2, f"instances: {st} {body}"):
            x0 = tensor(seg_imgs[0][1])
            with torch.no_grad():
                am = fcn(x0)[0].argmax(0).numpy()
            m0 = torch.from_numpy((am == 2).astype(np.float64))
            r0, s0 = gradcam(fcn, "seg", x0, lambda o: (o[2].double() * m0).sum())
            e0 = body["predictions"][0]["explanations"][0]
            chk.check(e0["index"] == 2, f"instance 0 target {e0['index']}")
            if float(r0.max()) > 0:
                close_map(e0, r0, "instance 0 (target 2, argmax)")
            close_score(e0["score"], s0, "instance 0 score")
            m1 = torch.from_numpy(box_mask((10, 20, 60, 80), SEG))
            r1, s1 = gradcam(fcn, "seg", x, lambda o: (o[1].double() * m1).sum())
            e1 = body["predictions"][1]["explanations"][0]
            chk.check(e1["index"] == 1 and e1["region"]["kind"] == "box", f"instance 1 {e1}")
            close_map(e1, r1, "instance 1 (target 1, box)")
        inst = {"instances": [
            {"image": {"b64": base64.b64encode(png_a).decode()}, "reference": ref_vec.tolist()},
            {"image": {"b64": base64.b64encode(png_a).decode()},
             "reference_image": base64.b64encode(png_b).decode()}],
            "parameters": {"outputs": "raw", "normalize": "none"}}
        st, _, body = post("emb", json.dumps(inst), "", "application/json")
        if chk.check(st == 200, f"embedding instances: {st} {body}"):
            close_map(body["predictions"][0]["explanations"][0], ref_a, "instance reference floats")
            close_map(body["predictions"][1]["explanations"][0], ref_ab, "instance reference image")
        inst = {"instances": [{"image": {"b64": base64.b64encode(png_a).decode()}, "method": "x"}]}
        st, h, body = post("emb", json.dumps(inst), "", "application/json")
        chk.error(st, h, body, 400, "invalid_argument", "instances[0].method", "unknown instance key")
        inst = {"instances": [{"image": {"b64": base64.b64encode(seg_imgs[0][0]).decode()},
                               "target": 9}]}
        st, h, body = post("fcn", json.dumps(inst), "", "application/json")
        chk.error(st, h, body, 400, "invalid_argument", "0..3", "instance target out of range")
    print(f"worst map |diff| / max|ref| {worst['map']:.3g} (tolerance {MAP_TOL}), worst score "
          f"|diff| / max(1, |ref|) {worst['score']:.3g} (tolerance {SCORE_TOL})")
    chk.done("targets.service")


if __name__ == "__main__":
    main()
