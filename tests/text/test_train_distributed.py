"""Two processes of the text trainer (gloo on CPU) take the path a multi-GPU NCCL run takes: its token and sequence
counts are CPU tensors, and NCCL reduces GPU tensors only. Run: pytest tests/text/test_train_distributed.py -q"""

import json
import os
import subprocess
import sys
from pathlib import Path


def test_two_processes_reduce_cpu_counts_through_the_collective_device(tiny_folder, tmp_path):
    child = Path(__file__).parent / "nccl_path_child.py"
    args = [
        f"model.path={tiny_folder}",
        f"task.train_file={tiny_folder / 'train.jsonl'}",
        f"task.test_file={tiny_folder / 'test.jsonl'}",
        "task.test_size=4",
        f"run.root={tmp_path / 'runs'}",
        "run.tensorboard=false",
        "train.steps=2",
        "train.prompts_per_step=4",
        "train.skip_zero_advantage=false",  # every row is forwarded on both ranks
        "optim.lr=1e-3",
        "eval.every_minutes=0",
        "reward.names=[text_rewards_toy:length]",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", str(child), str(tmp_path), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-8000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    # per step: 2 counts (tokens, sequences) + every trainable tensor's gradient, all staged (they are CPU tensors)
    assert all(r["staged"] >= 2 * 2 for r in ranks)
    assert ranks[0]["weights"] == ranks[1]["weights"]  # the summed gradients reached both processes
