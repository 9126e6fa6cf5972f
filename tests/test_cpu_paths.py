"""`make cpu-paths` runs the suite again under other CPU code paths; these checks make sure it really does."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif("ATEN_CPU_CAPABILITY" not in os.environ, reason="only in a pass that asks for a code path")
def test_pytorch_runs_the_kernels_the_environment_asks_for():
    # If PyTorch ignored ATEN_CPU_CAPABILITY (a renamed variable, a CPU without it), the pass would silently
    # repeat the native one. "avx2" can only be honoured by a CPU that has AVX2; "default" by every CPU.
    asked = os.environ["ATEN_CPU_CAPABILITY"].upper()
    assert torch.backends.cpu.get_cpu_capability() == asked


@pytest.mark.skipif("OMP_NUM_THREADS" not in os.environ, reason="only in a pass that sets the thread count")
def test_pytorch_uses_the_thread_count_the_environment_asks_for():
    assert torch.get_num_threads() == int(os.environ["OMP_NUM_THREADS"])


def test_the_plain_code_path_changes_a_float_sum():
    # The probe of scripts/cpu_paths.py, natively and with PyTorch's plain C++ kernels on 1 thread: some sum
    # must change, or the cpu-paths pass would test nothing new. (On x86-64 the native path is vectorised.)
    plain = "ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_ENABLE_INSTRUCTIONS=SSE4_2 OMP_NUM_THREADS=1"
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "cpu_paths.py"), plain], capture_output=True,
                         text=True, env={k: v for k, v in os.environ.items()
                                         if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                      "MKL_ENABLE_INSTRUCTIONS", "OMP_NUM_THREADS")})
    assert out.returncode == 0, out.stdout + out.stderr
    native, plain_row = out.stdout.splitlines()[1:3]
    assert "DEFAULT" in plain_row and native.split()[-4:] != plain_row.split()[-4:]
