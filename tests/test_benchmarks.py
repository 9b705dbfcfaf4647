"""The device check runs on a CPU with tiny sizes, so it cannot rot between GPU sessions."""

import json
import os
import subprocess
import sys

import pytest

from helpers import ROOT


@pytest.mark.slow
def test_device_check_cpu_smoke_writes_every_field(tmp_path):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "device_check.py"), "--cpu-smoke", "--output", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert set(report) >= {"device", "training", "pipeline", "colourise", "first_step", "targets", "elapsed_s"}
    assert report["device"]["tensorflow"] and report["device"]["cpu_cores"] >= 1
    families = {row["family"] for row in report["training"]}
    assert families == {"unet", "pix2pix", "gorriz3", "gorriz3_vgg16"}
    assert {row["protocol"] for row in report["training"]} == {"simultaneous", "bbc"}
    for row in report["training"]:
        assert set(row) == {"family", "image_size", "batch", "precision", "xla", "protocol", "images_per_s",
                            "peak_memory_mb", "status"}  # fmt: skip
        assert row["status"] == "ok" and row["images_per_s"] > 0
    assert [row["cache"] for row in report["pipeline"]] == [False, True]
    assert all(row["images_per_s"] > 0 and row["images"] == 16 for row in report["pipeline"])
    assert report["colourise"]["seconds_per_image"] > 0
    assert report["first_step"]["compared"] is False and "no GPU" in report["first_step"]["reason"]
    assert set(report["targets"]) == {"gorriz_vgg16_training", "input_pipeline"}
    table = (tmp_path / "device_check.md").read_text()
    assert "| gorriz3_vgg16 | 32 | 2 | mixed_bfloat16 |" in table and "## Targets" in table


@pytest.mark.slow
def test_video_benchmark_runs_small(tmp_path):
    out = tmp_path / "video.json"
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "video.py"), "--size", "72", "128", "--frames", "4",
               "--model-size", "64", "--batch-size", "2", "--json", str(out), "--bfloat16"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["temporal"], r["keyframe_interval"]) for r in rows] == [
        (p, t, k) for p in ("float32", "bfloat16") for t, k in ((False, 1), (True, 1), (True, 2))
    ]  # fmt: skip
    assert all(r["frames"] == 4 and r["frames_per_s"] > 0 for r in rows)
    assert {r["engine"] for r in rows[:3]} <= {"tensorflow", "onnxruntime", "litert"}
    assert "| bfloat16 | tensorflow | on | every other frame |" in result.stdout
    assert result.stdout.startswith("CPU: ") and "oneDNN" in result.stdout.splitlines()[0]
