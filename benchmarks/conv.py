"""conv2d forward / backward GFLOP/s, fastnn against torch, each in its own process.

    python benchmarks/conv.py [--threads 2]

Layers (batch 32): Conv2d(3, 16, 3, padding=1) on 32x32 and Conv2d(16, 32, 3, padding=1)
on 16x16. Forward counts 2*N*O*OH*OW*C*KH*KW flops; backward (dx + dW + db) twice that
(the first layer's dx is still computed, as torch's input.requires_grad=True does).
"""
import argparse
import json
import subprocess
import sys
import time

LAYERS = [("conv 3->16 32x32", 3, 16, 32), ("conv 16->32 16x16", 16, 32, 16)]
N = 32


def best(fn, reps=30):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(lib, threads):
    import numpy as np
    out = {}
    for name, C, O, S in LAYERS:
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, S, S)).astype(np.float32)
        w = rng.standard_normal((O, C, 3, 3)).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        g = rng.standard_normal((N, O, S, S)).astype(np.float32)
        flops = 2.0 * N * O * S * S * C * 9
        if lib == "torch":
            import torch
            torch.set_num_threads(threads)
            xt, wt, bt, gt = (torch.from_numpy(a) for a in (x, w, b, g))
            xt.requires_grad_(True)
            wt.requires_grad_(True)
            bt.requires_grad_(True)
            with torch.no_grad():
                fwd = best(lambda: torch.nn.functional.conv2d(xt, wt, bt, 1, 1))
            y = torch.nn.functional.conv2d(xt, wt, bt, 1, 1)

            def bwd():
                torch.autograd.grad(y, (xt, wt, bt), gt, retain_graph=True)
            bw = best(bwd)
        else:
            import fastnn
            from fastnn import ops
            fastnn.set_num_threads(threads)
            fwd = best(lambda: ops.conv2d(x, w, b, 1, 1))
            bw = best(lambda: ops.conv2d_backward(g, x, w, 1, 1))
        out[name] = (flops / fwd / 1e9, 2 * flops / bw / 1e9)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lib", choices=["fastnn", "torch"])
    args = ap.parse_args()
    if args.lib:
        print(json.dumps(run(args.lib, args.threads)))
        return
    res = {}
    for lib in ("fastnn", "torch"):
        p = subprocess.run([sys.executable, __file__, "--lib", lib, "--threads",
                            str(args.threads)], capture_output=True, text=True, check=True)
        res[lib] = json.loads(p.stdout.strip().splitlines()[-1])
    print(f"{'layer':20s} {'fastnn fwd':>11s} {'torch fwd':>10s} {'fastnn bwd':>11s} "
          f"{'torch bwd':>10s}   GFLOP/s, {args.threads} threads, batch {N}")
    for name, *_ in LAYERS:
        f, t = res["fastnn"][name], res["torch"][name]
        print(f"{name:20s} {f[0]:11.1f} {t[0]:10.1f} {f[1]:11.1f} {t[1]:10.1f}")


if __name__ == "__main__":
    main()
