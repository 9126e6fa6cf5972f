"""Training throughput of ZFNet: the fp32 eager baseline against the tuned paths, in one process.

    python benchmarks/bench_train.py                 # the paper's ZFNet, 224 px, batch 128, on the GPU if any
    python benchmarks/bench_train.py --quick         # a CPU-sized sanity run (width 0.25, 112 px, batch 32)

Every configuration runs the same ``zfviz.train.train_step`` (forward, cross-entropy, backward, SGD step with
momentum, filter renormalisation) on a batch kept on the device, so the input pipeline is not measured.
Configurations: fp32 eager; bf16 autocast; bf16 + channels_last; bf16 + channels_last + torch.compile.
Printed: images/s, the ratio to fp32 eager, and achieved TFLOP/s as a share of the chip's bf16 peak, counting
3x the forward FLOPs of ``zfviz.models.flops`` per image (forward + backward). Goals from the issue on a
Hopper GPU: tuned >= 5x fp32 eager and >= 25% of peak. Not a test: numbers depend on the machine.
"""
import argparse
import time

import torch

from zfviz import models
from zfviz.train import pick_device, train_step

# Dense bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets (no sparsity).
PEAKS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0, "T4": 65.0}


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def measure(device, args, amp, channels_last, compiled) -> float:
    torch.manual_seed(0)
    net = models.init_kaiming_(models.zfnet(args.classes, args.width, args.input_size)).to(device)
    x = torch.randn(args.batch, 3, args.input_size, args.input_size, device=device)
    y = torch.randint(args.classes, (args.batch,), device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    model = torch.compile(net) if compiled else net
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    for _ in range(args.warmup):
        train_step(model, opt, x, y, amp=amp, count=False)
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        train_step(model, opt, x, y, amp=amp, count=False)
    sync(device)
    return args.steps * args.batch / (time.perf_counter() - start)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--input-size", "--image-size", type=int, default=224,
                   help="side of the square input (--image-size: its name before issue 17)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--peak-tflops", type=float, default=None, help="bf16 peak of the chip (default: from its name)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile configuration")
    p.add_argument("--quick", action="store_true", help="CPU-sized: width 0.25, 112 px, batch 32, 3+1 steps")
    args = p.parse_args()
    if args.quick:
        args.width, args.input_size, args.batch, args.classes, args.steps, args.warmup = 0.25, 112, 32, 10, 3, 1
    device = pick_device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        print(f"device: {torch.cuda.get_device_name(device)}, torch {torch.__version__}")
    else:
        print(f"device: {device} ({torch.get_num_threads()} threads), torch {torch.__version__}")
    net = models.zfnet(args.classes, args.width, args.input_size)
    step_flops = 3 * models.flops(net)
    print(f"ZFNet width {args.width}, {args.input_size} px, {args.classes} classes: "
          f"{sum(p.numel() for p in net.parameters()):,} parameters, {step_flops / 1e9:.2f} GFLOPs per image "
          f"per training step; batch {args.batch}, {args.steps} timed steps after {args.warmup} warm-up")
    configs = [("fp32 eager", "none", False, False), ("bf16 autocast", "bf16", False, False),
               ("bf16 + channels_last", "bf16", True, False)]
    if not args.no_compile:
        configs.append(("bf16 + channels_last + compile", "bf16", True, True))
    peak = peak_tflops(device, args.peak_tflops)
    base = None
    for name, amp, cl, comp in configs:
        rate = measure(device, args, amp, cl, comp)
        base = base or rate
        tflops = rate * step_flops / 1e12
        share = f"  {100 * tflops / peak:5.1f}% of {peak:.0f} TFLOP/s bf16 peak" if peak else ""
        print(f"{name:32s} {rate:10.1f} images/s  {rate / base:5.2f}x fp32 eager  {tflops:8.2f} TFLOP/s{share}",
              flush=True)


if __name__ == "__main__":
    main()
