#!/usr/bin/python3
"""Exports a torchvision image classifier to ONNX plus camd's labels file and config entry.

    /usr/bin/python3 models/export_torchvision.py resnet18 --out /tmp/models
    /usr/bin/python3 models/export_torchvision.py mobilenet_v3_small --random-weights --out DIR

Writes DIR/NAME.onnx (opset 13 by default, dynamic batch, input "input" -> output "logits"),
DIR/NAME.labels.txt (the 1000 ImageNet categories from the weights' metadata, which ships with
torchvision; no download needed) and DIR/NAME.json (preprocessing from the weights' own
transforms: resize the shorter side to resize_size, centre-crop crop_size, ImageNet mean/std,
scale 1/255, RGB; output activation softmax; default CAM layer and method).

Weights: by default the DEFAULT pretrained weights (torchvision downloads them to
$TORCH_HOME, which needs network access unless they are cached already). With
--random-weights the model is built with seeded random weights (offline); BatchNorm running
statistics are then randomised too (--seed) so activations are not trivially normalised.

Default layer: the ONNX value name of the last 4-D activation with spatial size > 1 that feeds
the final global pooling (GlobalAveragePool, ReduceMean over H,W, or a Flatten of a 4-D
value), found with ONNX shape inference. Models without such a layer (e.g. ViT, whose head
reads the class token) get no "default_layer" and camd picks one itself.
"""

import argparse
import json
import os
import sys


def find_default_layer(model, shape_model=None):
    """Value name of the last 4-D, spatial > 1 activation before the last global pooling.

    `shape_model` (same graph exported with a static batch, so that Shape/Reshape chains are
    folded and shape inference reaches the head) supplies the shapes when given."""
    import onnx
    try:
        inferred = onnx.shape_inference.infer_shapes(shape_model or model)
    except Exception as e:  # noqa: BLE001 (shape inference is best effort)
        print("note: shape inference failed (%s); no default layer" % e, file=sys.stderr)
        return None
    shapes = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + \
            list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else None for d in dims]
    inits = {t.name for t in model.graph.initializer}

    # Nodes on the path to output 0.
    producer = {o: n for n in model.graph.node for o in n.output}
    needed, stack = set(), [model.graph.output[0].name]
    while stack:
        v = stack.pop()
        n = producer.get(v)
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        stack.extend(i for i in n.input if i and i not in inits)

    def spatial4(name):
        s = shapes.get(name)
        return (s is not None and len(s) == 4 and s[2] is not None and s[3] is not None
                and s[2] * s[3] > 1)

    def attr(n, key, default=None):
        for a in n.attribute:
            if a.name == key:
                return onnx.helper.get_attribute_value(a)
        return default

    def reduce_axes(n):
        axes = attr(n, "axes")
        if axes is None and len(n.input) > 1:  # ReduceMean-18 style: axes as input
            for t in model.graph.initializer:
                if t.name == n.input[1]:
                    axes = list(onnx.numpy_helper.to_array(t))
        return axes

    candidate = None
    for n in model.graph.node:
        if id(n) not in needed or not n.input:
            continue
        src = n.input[0]
        if n.op_type == "GlobalAveragePool" or n.op_type == "GlobalMaxPool":
            hit = spatial4(src)
        elif n.op_type == "ReduceMean":
            axes = reduce_axes(n)
            hit = spatial4(src) and axes is not None and \
                sorted(int(a) % 4 for a in axes) == [2, 3]
        elif n.op_type == "Flatten":
            hit = spatial4(src) and candidate is None
        else:
            hit = False
        if hit:
            candidate = src
    return candidate


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="torchvision classification model name, e.g. resnet50")
    ap.add_argument("--out", required=True, help="output directory")
    ap.add_argument("--random-weights", action="store_true",
                    help="seeded random weights instead of downloading DEFAULT weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=13)
    args = ap.parse_args(argv)

    import torch
    import torchvision
    import torchvision.models as tvm
    torch.set_num_threads(1)
    names = tvm.list_models(module=tvm)
    if args.name not in names:
        ap.error("unknown classification model %r; torchvision %s offers: %s"
                 % (args.name, torchvision.__version__, ", ".join(sorted(names))))
    weights = tvm.get_model_weights(args.name).DEFAULT
    meta = weights.meta
    tr = weights.transforms()
    crop = int(tr.crop_size[0])
    resize = int(tr.resize_size[0])
    mean = [float(v) for v in tr.mean]
    std = [float(v) for v in tr.std]
    interp = str(getattr(tr.interpolation, "value", tr.interpolation))

    torch.manual_seed(args.seed)
    if args.random_weights:
        model = tvm.get_model(args.name, weights=None)
        g = torch.Generator().manual_seed(args.seed)
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
    else:
        try:
            model = tvm.get_model(args.name, weights=weights)
        except Exception as e:  # noqa: BLE001 (download errors come in many types)
            print("cannot load %s (%s): %s\nuse --random-weights offline"
                  % (args.name, weights, e), file=sys.stderr)
            return 1
    model.eval()

    os.makedirs(args.out, exist_ok=True)
    onnx_path = os.path.join(args.out, args.name + ".onnx")
    dummy = torch.randn(1, 3, crop, crop, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.onnx.export(model, dummy, onnx_path, opset_version=args.opset,
                          input_names=["input"], output_names=["logits"],
                          dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          do_constant_folding=True)
    import onnx
    import tempfile
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    # Shapes come from a static-batch export of the same graph (same value names).
    with tempfile.TemporaryDirectory() as tmp:
        static_path = os.path.join(tmp, "static.onnx")
        with torch.no_grad():
            torch.onnx.export(model, dummy, static_path, opset_version=args.opset,
                              input_names=["input"], output_names=["logits"],
                              do_constant_folding=True)
        static = onnx.load(static_path)
    layer = find_default_layer(m, static)
    if layer and layer not in {o for n in m.graph.node for o in n.output}:
        layer = None

    categories = list(meta["categories"])
    labels_path = os.path.join(args.out, args.name + ".labels.txt")
    with open(labels_path, "w") as f:
        f.write("\n".join(categories) + "\n")
    cfg = {
        "name": args.name,
        "description": "torchvision %s (%s)" % (args.name, "seeded random weights, seed %d"
                                                % args.seed if args.random_weights
                                                else str(weights)),
        "onnx": args.name + ".onnx",
        "labels": args.name + ".labels.txt",
        "input_name": "input",
        "output_name": "logits",
        "input_width": crop,
        "input_height": crop,
        "channels": 3,
        "channel_order": "RGB",
        "layout": "NCHW",
        "resize": "shorter",
        "resize_size": resize,
        "crop": "center",
        "interpolation": interp,
        "scale": 1.0 / 255.0,
        "mean": mean,
        "std": std,
        "output_activation": "softmax",
        "default_method": "gradcam",
    }
    if layer:
        cfg["default_layer"] = layer
    if not args.random_weights:
        for key in ("_metrics", "num_params"):
            if key in meta:
                cfg["torchvision_" + key.strip("_")] = meta[key]
    with open(os.path.join(args.out, args.name + ".json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    print("wrote %s (%.1f MB), %s, %s.json; default layer: %s"
          % (onnx_path, os.path.getsize(onnx_path) / 1e6, labels_path, args.name,
             layer or "(none found)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
