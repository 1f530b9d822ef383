from __future__ import annotations

import json

import pytest

from benchmarks.engine_contention import main, run


def _tiny(dirs) -> list[str]:
    return [f"{role}.{key}={value}" for role, path in (("draft", dirs.draft), ("target", dirs.target))
            for key, value in (("path", path), ("dtype", "float32"), ("max_model_len", 512), ("num_threads", 1))]


def test_two_engines_decode_together_and_each_reports(tiny_model_dirs, tmp_path):
    out = tmp_path / "contention.json"
    assert main([*_tiny(tiny_model_dirs), "--engines", "target,draft", "--batch", "2", "--tokens", "4",
                 "--window", "0.5", "--output", str(out)]) == 0
    data = json.loads(out.read_text())
    assert [r["engine"] for r in data["results"]] == ["target", "draft"]
    for r in data["results"]:
        assert r["batches"] >= 1 and r["seconds"] >= 0.5 and r["tokens"] > 0
        assert r["tokens_per_s"] == pytest.approx(r["tokens"] / r["seconds"], rel=1e-2)


def test_an_engine_that_cannot_load_is_named(tmp_path):
    with pytest.raises(RuntimeError, match=r"\['target'\] did not load"):
        run(["target"], [f"target.path={tmp_path / 'missing'}"], batch=1, tokens=2, window_s=0.5)


@pytest.mark.parametrize("engines", ["target,target", "verifier", ""])
def test_engine_lists_are_checked(engines):
    with pytest.raises(SystemExit):
        main(["--engines", engines])
