"""`make cpu-paths` runs the suite again under other CPU code paths; these checks make sure it really does."""
import os
import re
import shutil
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


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_test_runs_each_suite_on_each_code_path():
    # `make -n` prints the commands without running them (the recursive make of cpu-paths is followed).
    # What CI runs must keep every pass: nbval natively on the chapters' 2 threads; the unit tests natively,
    # under AVX2 and under the plain kernels, on 1 thread; nbval under AVX2 and plain; the classroom tests once
    # (natively, on 2 threads, alone).
    out = subprocess.run(["make", "-n", "--no-print-directory", "test"], cwd=ROOT, capture_output=True, text=True,
                         env={k: v for k, v in os.environ.items() if not k.startswith("MAKE")})
    assert out.returncode == 0, out.stderr
    runs = [line for line in out.stdout.splitlines() if " -m pytest " in line]

    def passes(suite: str) -> list[str]:
        # the code path of each run of `suite`: native, avx2 or default, and its thread count
        found = []
        for line in runs:
            if suite == "nbval" and "--nbval" not in line or suite != "nbval" and "--nbval" in line:
                continue
            if suite == "classroom" and "-m classroom" not in line or suite == "unit" and '-m "not classroom"' not in line:
                continue
            path = re.search(r"ATEN_CPU_CAPABILITY=(\w+)", line)
            threads = re.search(r"ZFVIZ_THREADS=(\d)", line)
            found.append(f"{path.group(1) if path else 'native'}/{threads.group(1) if threads else 2}")
        return sorted(found)

    assert passes("nbval") == ["avx2/1", "default/1", "native/2"]
    assert passes("unit") == ["avx2/1", "default/1", "native/1"]
    assert passes("classroom") == ["native/2"]
    assert any("tests/browser" in line for line in runs)
