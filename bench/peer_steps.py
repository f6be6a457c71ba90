#!/usr/bin/python3
"""PyTorch-side micro-benchmark (issue 9): images/s of the steps our engine runs, measured on the
PyTorch peer's model (../shared/peer: the Keras MobileNetV2 alpha 0.35 re-implemented in torch, same
pretrained weights) so bench/inference.ts and bench/kernels.ts can give their figures as ratios to
PyTorch measured in the same run.

    /usr/bin/python3 bench/peer_steps.py --threads 1 [--seconds 3] [--out FILE]

Measured at 224 px on real hymenoptera photos (Resize 256 + CenterCrop 224, x/127.5 - 1 as peer.py's
validation transform), decoded once beforehand so only the step is timed:
  inference    backbone to out_relu + global average pool, eval mode; torch.no_grad and
               torch.inference_mode x default (NCHW) and channels-last memory format; batch 32
  head_step    frozen backbone (eval, no_grad) + Linear(1280 -> 2) trained with Adam; batch 32
  suffix_step  block_14..block_16 + Conv_1 (+BN) + head trainable, BatchNorm in eval mode (as our
               engine keeps it), input = block_13 outputs cached once beforehand; batch 16, Adam
  full_step    whole backbone + head trainable, BatchNorm in train mode (peer.py's `full` recipe)
               and in eval mode, batch 16 and 32, Adam
Each figure: warm-up iterations excluded, then iterations until --seconds have passed (at least 3).
Progress goes to stderr; the last stdout line is one JSON object (also written to --out).
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("FINETUNE_SHARED", os.path.join(HERE, "..", "..", "shared"))

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads(N)")
ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per figure (after warm-up)")
ap.add_argument("--warmup", type=int, default=2, help="untimed iterations before each figure")
ap.add_argument("--images", type=int, default=64, help="photos decoded (cycled through as batches)")
ap.add_argument("--data", default=os.path.join(SHARED, "datasets", "hymenoptera", "train"))
ap.add_argument("--peer-dir", default=os.path.join(SHARED, "peer"), help="holds mnv2.py and mnv2_035.pt")
ap.add_argument("--omp-wait-policy", choices=["passive", "active", "default"], default=None,
                help="as peer.py: default $OMP_WAIT_POLICY, else passive")
ap.add_argument("--out", default=None, help="also write the JSON result here")
ap.add_argument("--serve", action="store_true",
                help="duel mode (bench/steps.ts --duel): set up the suffix step and inference once, then for "
                     "each stdin line '<figure> <seconds>' time that figure and print one JSON line")
args = ap.parse_args()

# As peer.py: OpenMP reads OMP_WAIT_POLICY once, when torch loads, and with libgomp's spinning
# default a busy neighbour on one of the 2 cores makes 2-thread torch several times slower.
OMP_WAIT_POLICY = args.omp_wait_policy or os.environ.get("OMP_WAIT_POLICY", "passive").lower()
if OMP_WAIT_POLICY in ("passive", "active"):
    os.environ["OMP_WAIT_POLICY"] = OMP_WAIT_POLICY.upper()
else:
    os.environ.pop("OMP_WAIT_POLICY", None)

LOAD_BEFORE = os.getloadavg()

import torch  # noqa: E402  (after the OpenMP setting above)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from torchvision import transforms  # noqa: E402

sys.path.insert(0, os.path.abspath(args.peer_dir))
import mnv2  # noqa: E402

WEIGHTS = os.path.join(os.path.abspath(args.peer_dir), "mnv2_035.pt")
SUFFIX_FROM = 14  # blocks[14] is block_14 (blocks[0] is expanded_conv)


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def load_photos(folder, count):
    """First `count` photos, ants and bees alternating (sorted within each class), as peer.py's
    validation transform makes them: (N, 3, 224, 224) in [-1, 1] and class labels."""
    classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    per_class = [sorted(os.path.join(folder, c, f) for f in os.listdir(os.path.join(folder, c))
                        if f.lower().endswith((".jpg", ".jpeg"))) for c in classes]
    tf = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                             transforms.Normalize([0.5] * 3, [0.5] * 3)])
    xs, ys = [], []
    for i in range(max(len(p) for p in per_class)):
        for label, files in enumerate(per_class):
            if i < len(files) and len(xs) < count:
                with Image.open(files[i]) as im:
                    xs.append(tf(im.convert("RGB")))
                ys.append(label)
    return torch.stack(xs), torch.tensor(ys), classes


def batches_of(x, y, batch):
    n = x.shape[0] // batch
    assert n >= 1, f"--images {x.shape[0]} is fewer than one batch of {batch}"
    return [(x[i * batch:(i + 1) * batch], y[i * batch:(i + 1) * batch]) for i in range(n)]


def timed(name, step, batches, batch, warmup=None, seconds=None):
    """Run `step` on the batches in turn: `warmup` (default --warmup) untimed, then until
    `seconds` (default --seconds) have passed."""
    warmup = args.warmup if warmup is None else warmup
    seconds = args.seconds if seconds is None else seconds
    warmup_s = []
    for i in range(warmup):
        t = time.perf_counter()
        step(*batches[i % len(batches)])
        warmup_s.append(round(time.perf_counter() - t, 3))
    times = []
    t0, c0 = time.perf_counter(), time.process_time()
    while len(times) < 3 or time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        step(*batches[(warmup + len(times)) % len(batches)])
        times.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    res = {"images_per_s": round(batch * len(times) / wall, 2),
           "images_per_s_median": round(batch / statistics.median(times), 2),
           "batch": batch, "iterations": len(times), "warmup_s": warmup_s,
           "seconds": round(wall, 3), "cpu_s": round(cpu, 3), "cpu_util": round(cpu / wall, 2)}
    log(f"  {name}: {res['images_per_s']} images/s (median step {res['images_per_s_median']}), "
        f"{len(times)} x batch {batch} in {wall:.2f} s, cpu {cpu:.2f} s (warm-up {warmup_s} s)")
    return res


def pooled(backbone, x):
    return F.adaptive_avg_pool2d(backbone(x), 1).flatten(1)


def fresh_backbone():
    """A new copy per figure, so no figure runs on weights or BN statistics another one changed."""
    return mnv2.load_backbone(WEIGHTS)


def bench_inference(x, y):
    out = {}
    for fmt in ("default", "channels_last"):
        for grad_mode in ("no_grad", "inference_mode"):
            backbone = fresh_backbone().eval()
            data = batches_of(x, y, 32)
            if fmt == "channels_last":
                backbone = backbone.to(memory_format=torch.channels_last)
                data = [(xb.contiguous(memory_format=torch.channels_last), yb) for xb, yb in data]
            ctx = torch.no_grad if grad_mode == "no_grad" else torch.inference_mode

            def step(xb, yb):
                with ctx():
                    pooled(backbone, xb)

            out[f"{grad_mode}+{fmt}"] = timed(f"inference {grad_mode} {fmt}", step, data, 32)
    best = max(out, key=lambda k: out[k]["images_per_s"])
    return {"default": {"variant": "no_grad+default", **out["no_grad+default"]},
            "best": {"variant": best, **out[best]}, "variants": out}


def train_step(model, opt):
    """One optimisation step of `model` on a batch, as the peer's training loop does it."""
    def step(xb, yb):
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        loss.item()

    return step


def bench_head_step(x, y):
    backbone = fresh_backbone().eval()
    for p in backbone.parameters():
        p.requires_grad = False
    head = nn.Linear(backbone.num_features, 2)
    opt = torch.optim.Adam(head.parameters(), lr=1e-3)

    def step(xb, yb):
        with torch.no_grad():
            feats = pooled(backbone, xb)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(feats), yb)
        loss.backward()
        opt.step()
        loss.item()

    return timed("head step", step, batches_of(x, y, 32), 32)


class Suffix(nn.Module):
    """block_14..block_16 + Conv_1/Conv_1_bn (out_relu) + pool + head: what `progressive` unfreezes."""

    def __init__(self, backbone, num_classes):
        super().__init__()
        self.blocks = nn.ModuleList(backbone.blocks[SUFFIX_FROM:])
        self.Conv_1, self.Conv_1_bn = backbone.Conv_1, backbone.Conv_1_bn
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(F.adaptive_avg_pool2d(F.relu6(self.Conv_1_bn(self.Conv_1(x))), 1).flatten(1))


def block13_outputs(backbone, x):
    with torch.no_grad():
        h = F.relu6(backbone.bn_Conv1(backbone.Conv1(backbone.Conv1_pad(x))))
        for b in backbone.blocks[:SUFFIX_FROM]:
            h = b(h)
    return h


def suffix_setup(x, y):
    """The suffix step and its batches: (step, batches, cached input shape)."""
    backbone = fresh_backbone().eval()
    names = [b.name for b in backbone.blocks[SUFFIX_FROM:]]
    assert names == ["block_14", "block_15", "block_16"], names
    cached = block13_outputs(backbone, x)  # once, untimed: the feature cache our engine keeps
    suffix = Suffix(backbone, 2).eval()  # BatchNorm in eval mode, all suffix parameters trainable
    opt = torch.optim.Adam([{"params": suffix.head.parameters(), "lr": 1e-3},
                            {"params": [p for n, p in suffix.named_parameters() if not n.startswith("head.")],
                             "lr": 1e-4}])

    return train_step(suffix, opt), batches_of(cached, y, 16), list(cached.shape[1:])


def bench_suffix_step(x, y):
    step, batches, shape = suffix_setup(x, y)
    res = timed("suffix step", step, batches, 16)
    res["input_shape"] = shape
    return res


def serve(x, y):
    """Duel mode: the figures set up once, then timed on request, one JSON line per request."""
    suffix_step, suffix_batches, _ = suffix_setup(x, y)
    backbone = fresh_backbone().eval()
    inference_batches = batches_of(x, y, 32)

    def inference(xb, yb):
        with torch.no_grad():
            pooled(backbone, xb)

    figures = {"suffix_step": (suffix_step, suffix_batches, 16), "inference": (inference, inference_batches, 32)}
    print(json.dumps({"ready": True, "threads": torch.get_num_threads(), "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        name, seconds = parts[0], float(parts[1])
        step, batches, batch = figures[name]
        print(json.dumps(timed(name, step, batches, batch, seconds=seconds)), flush=True)


class Net(nn.Module):
    def __init__(self, backbone, num_classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward(self, x):
        return self.head(pooled(self.backbone, x))


def bench_full_step(x, y):
    out = {}
    for bn in ("train", "eval"):
        for batch in (16, 32):
            model = Net(fresh_backbone(), 2)
            model.train(bn == "train")
            opt = torch.optim.Adam(model.parameters(), lr=1e-4)
            out[f"bn_{bn}_batch{batch}"] = timed(f"full step, BatchNorm {bn}, batch {batch}", train_step(model, opt),
                                                 batches_of(x, y, batch), batch)
    return out


def main():
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    t_start = time.perf_counter()
    x, y, classes = load_photos(args.data, args.images)
    log(f"peer_steps: torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"OMP_WAIT_POLICY {OMP_WAIT_POLICY}, {x.shape[0]} photos from {args.data}, load {LOAD_BEFORE}")
    if args.serve:
        serve(x, y)
        return
    figures = {}
    for name, fn in (("inference", bench_inference), ("head_step", bench_head_step),
                     ("suffix_step", bench_suffix_step), ("full_step", bench_full_step)):
        log(f"{name}:")
        figures[name] = fn(x, y)
    res = {
        "bench": "peer-steps", "torch": torch.__version__, "python": platform.python_version(),
        "threads": torch.get_num_threads(), "threads_requested": args.threads,
        "omp_wait_policy": OMP_WAIT_POLICY,
        # glibc's allocator settings matter a lot here: by default every large activation buffer is
        # mmap'd and unmapped per step and page faults show up as system time (see cpu_s).
        "malloc_env": {k: v for k, v in os.environ.items() if k.startswith("MALLOC_")},
        "img": 224, "photos": int(x.shape[0]), "classes": classes,
        "data": os.path.abspath(args.data), "weights": WEIGHTS, "seconds_per_figure": args.seconds,
        "loadavg_before": [round(v, 2) for v in LOAD_BEFORE],
        "loadavg_after": [round(v, 2) for v in os.getloadavg()],
        "wall_s": round(time.perf_counter() - t_start, 2),
        **figures,
    }
    line = json.dumps(res)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")


if __name__ == "__main__":
    main()
