"""Show that the CPU code paths `make cpu-paths` tests under really add floats in another order here.

    python scripts/cpu_paths.py "ATEN_CPU_CAPABILITY=avx2 ..." "ATEN_CPU_CAPABILITY=default ..."

Each argument is a set of environment variables (as `env` takes them). The same few float sums (a
convolution, a matrix product, a long vector, a softmax) are computed in a fresh process natively and under each
set, and printed side by side. The tests and chapters are then run again under each set: if no set
changed any sum, those passes would only repeat the native one, so this exits with status 1.
A set that changes nothing (e.g. AVX2 on a CPU whose best path is AVX2 already) is reported, not an error.
"""
from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
import torch, torch.nn.functional as F
torch.manual_seed(0)
x, w, a, v = torch.randn(8, 3, 64, 64), torch.randn(16, 3, 7, 7), torch.randn(500, 500), torch.randn(100_001)
b = torch.randn(64, 1000)
print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads(), repr(F.conv2d(x, w).sum().item()),
      repr((a @ a).sum().item()), repr(v.sum().item()), repr(F.softmax(b, 1)[:, :5].sum().item()))
"""


def probe(assignments: str) -> list[str]:
    env = dict(os.environ)
    env.update(kv.split("=", 1) for kv in assignments.split())
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, check=True, capture_output=True, text=True)
    return out.stdout.split()


def main(argv: list[str]) -> int:
    if not argv:
        raise SystemExit(__doc__)
    native = probe("")
    print(f"{'code path':78s} {'kernels':>8s} {'threads':>7s}  conv, matmul, vector, softmax (sums)")
    print(f"{'native':78s} {native[0]:>8s} {native[1]:>7s}  {', '.join(native[2:])}")
    changed = 0
    for assignments in argv:
        got = probe(assignments)
        differs = got[2:] != native[2:]
        changed += differs
        print(f"{assignments[:78]:78s} {got[0]:>8s} {got[1]:>7s}  {', '.join(got[2:])}"
              f"{'' if differs else '   (the same sums as native: this pass repeats the native one)'}")
    if not changed:
        print("no alternative code path changes a float sum on this machine: the passes would test nothing new")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
