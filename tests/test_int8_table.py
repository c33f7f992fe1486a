"""The int8 table (``benchmarks/int8_table.py``): the latest run of a head wins, a GAN file that keeps
its PSNR-Y but loses LPIPS misses, and heads no run measured say so."""

from __future__ import annotations

import json

import pytest

from benchmarks.int8_table import main


def _row(model: str, fmt: str, scale: int, cost: float, lpips_rise: float = 0.0) -> dict:
    return {
        "model": model,
        "format": fmt,
        "scale": scale,
        "cost_db": cost,
        "budget_db": 0.05,
        "lpips_fp32": 0.1,
        "lpips_file": 0.1 + lpips_rise,
    }


def _results(path, runs: list[tuple[str, list[dict]]]):
    path.write_text(json.dumps({"runs": [{"command": c, "files": rows} for c, rows in runs]}))
    return path


def test_later_runs_replace_earlier_ones_and_gan_files_answer_for_lpips(tmp_path):
    old = _results(
        tmp_path / "old.json",
        [
            (
                "pcarn export --model pcarn-m",
                [_row("pcarn-m", "onnx", 2, 0.067), _row("pcarn-m", "onnx", 3, 0.02)],
            )
        ],
    )
    new = _results(
        tmp_path / "new.json",
        [
            ("pcarn export --model pcarn-m --scales 2", [_row("pcarn-m", "onnx", 2, 0.011)]),
            (
                "pcarn export --model pcarn-m-gan --input-size 96x128",
                [_row("pcarn-m-gan", "tflite", 4, 0.001, lpips_rise=0.006)],
            ),
        ],
    )
    out = tmp_path / "table.md"
    assert main([str(old), str(new), "--out", str(out)]) == 0
    text = out.read_text()
    assert "| pcarn-m | 720p | +0.011 / +0.020 / – | not measured | not measured |" in text
    assert "| pcarn-m-gan | 96x128 | not measured | – / – / **+0.001** ✗ | not measured |" in text
    assert "| authors-pcarn-m-l1 | 720p | not measured | not measured | not measured |" in text
    assert "3 of 108 heads measured; 2 within the budget." in text
    assert "Over the budget: pcarn-m-gan TFLite x4 96x128 +0.001 dB, LPIPS +0.0060." in text
    assert "+0.067" not in text  # the replaced measurement
    assert "`old.json`: `pcarn export --model pcarn-m`" in text


def test_a_missing_results_file_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([str(tmp_path / "absent.json")])
    assert exit_.value.code == 2 and "no such results file" in capsys.readouterr().err


def test_a_file_that_is_not_export_results_is_refused_before_writing(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": []}))
    out = tmp_path / "table.md"
    with pytest.raises(SystemExit) as exit_:
        main([str(bad), "--out", str(out)])
    assert exit_.value.code == 2 and "not a results file" in capsys.readouterr().err
    assert not out.exists()
