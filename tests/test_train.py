"""nanonb.train: the config rule, and 2-process (gloo) meta-training equal to one process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nanonb.bench.schema import OptionError
from nanonb.learners.registry import load
from nanonb.train import TrainConfig, main, resolve_device, train

ROOT = Path(__file__).resolve().parents[1]
LEARNER = {"model_kwargs": {"hidden": (16,)}, "n_iterations": 3, "meta_batch_size": 3, "inner_steps": 2,
           "k_support": [2, 5], "k_query": 5}


def _flat(learner):
    return torch.cat([p.detach().reshape(-1) for p in learner.parameters()])


@pytest.mark.parametrize("algorithm", ["metasgd"])  # learned step sizes: extra parameters reduced too
def test_two_processes_give_the_parameters_of_one(tmp_path, algorithm):
    out = tmp_path / "dist"
    args = ["--standalone", "--nproc_per_node", "2", "-m", "nanonb.train", "--no-progress",
            "--set", f"algorithm={algorithm}", "--set", "device=cpu", "--set", f"out={out}",
            "--set", "learner=" + str(LEARNER).replace("'", '"').replace("(", "[").replace(",)", "]")]
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", *args], env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "on 2 process(es)" in run.stdout
    two = load(out)
    one = train(TrainConfig(algorithm=algorithm, device="cpu", learner=dict(LEARNER)), progress=False)
    before = make_untrained(algorithm)
    assert not torch.allclose(_flat(one), before)  # training moved the weights
    torch.testing.assert_close(_flat(two), _flat(one), rtol=1e-6, atol=1e-6)


def make_untrained(algorithm):
    return _flat(train(TrainConfig(algorithm=algorithm, device="cpu", learner={**LEARNER, "n_iterations": 0}),
                       progress=False))


def test_config_file_and_set_use_the_one_option_rule(tmp_path, capsys):
    cfg = tmp_path / "c.json"
    cfg.write_text('{"algorithm": "anil", "learner": {"n_iterations": 1, "model_kwargs": {"hidden": [8]}}}')
    assert main([str(cfg), "--no-progress", "--set", "device=cpu", "--set", f"out={tmp_path / 'a'}"]) == 0
    assert "anil on 1 process(es)" in capsys.readouterr().out
    assert load(tmp_path / "a").name == "anil" and (tmp_path / "a.train.json").is_file()
    with pytest.raises(SystemExit):
        main(["--set", "n_iteration=3"])
    with pytest.raises(OptionError, match="data="):
        train(TrainConfig(data="nope"))
    assert resolve_device("cpu") == "cpu"
