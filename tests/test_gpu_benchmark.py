"""benchmarks/gpu.py: its --smoke run exercises every row of the GPU table on the CPU."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def load_benchmark():
    spec = importlib.util.spec_from_file_location("gpu_benchmark", REPO / "benchmarks" / "gpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_gpu_benchmark_smoke_runs_every_row_on_the_cpu(capsys):
    summary = load_benchmark().main(["--smoke", "--batch-size", "2"])
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("tiny on CPU (smoke run")
    rows = [line for line in out.splitlines() if line.startswith("| ") and not line.startswith("| measure")]
    assert len(rows) == 6 and "auto (fp32)" in rows[1]  # auto means full precision on the CPU
    assert summary["auto_precision"] == "fp32"
    assert summary["fp32_samples_per_s"] > 0 and summary["auto_samples_per_s"] > 0
    assert summary["clip_b1_s"] > 0 and summary["clip_b2_s"] > 0
    assert summary["lora_peak_gib"] is None and "n/a (CPU)" in rows[2]
    assert out.strip().splitlines()[-1].startswith("auto_precision: fp32, fp32_samples_per_s: ")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the full run would start")
def test_gpu_benchmark_without_a_gpu_says_to_use_smoke():
    with pytest.raises(SystemExit, match="--smoke"):
        load_benchmark().main([])
