"""The build configuration of the shipped pretrained learners (:mod:`nanonb.pretrained`).

Everything that determines the files in ``nanonb/pretrained_weights/``: data, seeds, budgets, the candidate
settings of the Bayesian last layer and how they are chosen. Changing it requires
``python -m nanonb.pretrained build``.

Example
-------
>>> from nanonb.pretrained_config import BUILD_CONFIG
>>> BUILD_CONFIG["seed"], BUILD_CONFIG["data"]["holdout"]
(0, 'Pt')
"""

from __future__ import annotations

from typing import Any

#: Everything that determines the shipped files. Changing it requires a rebuild.
BUILD_CONFIG: dict[str, Any] = {
    "data": {"dataset": "nanoalloys", "n_per_pair": 80, "seed": 0, "holdout": "Pt"},
    "seed": 0,
    "torch_num_threads": 1,
    "learners": {
        "nanoalloys-bml": {
            "algorithm": "bml", "inputs": "descriptors", "model": "MLP",
            "meta_batch_size": 8, "k_support": [0, 20], "k_query": 20, "lr": 2e-3,
            # chosen by leave-one-element-out inside meta-train (see nanonb.pretrained_bml)
            "candidates": {
                "mlp 64x64, 250 it.": {"model_kwargs": {"hidden": [64, 64]}, "n_iterations": 250},
                "mlp 64x64, 500 it.": {"model_kwargs": {"hidden": [64, 64]}, "n_iterations": 500},
                "mlp 128x128, 250 it.": {"model_kwargs": {"hidden": [128, 128]}, "n_iterations": 250},
                "mlp 32x32, 250 it.": {"model_kwargs": {"hidden": [32, 32]}, "n_iterations": 250},
                "mlp 32x32, 500 it.": {"model_kwargs": {"hidden": [32, 32]}, "n_iterations": 500},
                "mlp 32x32, 250 it., batch 16": {"model_kwargs": {"hidden": [32, 32]}, "n_iterations": 250,
                                                 "meta_batch_size": 16},
                "mlp 16x16, 250 it.": {"model_kwargs": {"hidden": [16, 16]}, "n_iterations": 250},
                "mlp 32, 250 it.": {"model_kwargs": {"hidden": [32]}, "n_iterations": 250},
            },
            "selection": {"k": 5, "episodes": 3, "folds": "each element of the meta-train pairs in turn"},
        },
        # the meta-validation winner of the quickstart (bml-ens): five Bayesian last layers differing only in
        # seed, with the settings chosen for nanoalloys-bml (its selection is reused, not re-run)
        "nanoalloys-bml-ens": {"algorithm": "bml-ens", "n_members": 5, "settings_of": "nanoalloys-bml"},
        "nanoalloys-anil": {
            "algorithm": "anil", "model": "InvariantGNN",
            "model_kwargs": {"width": 32, "n_blocks": 2, "n_rbf": 16},
            "inner_lr": 0.1, "inner_steps": 5, "outer_lr": 3e-3, "meta_batch_size": 4,
            "k_support": [1, 10], "k_query": 15, "n_iterations": 300,
        },
    },
    "baselines": {
        "nanoalloys-pooled": {
            "method": "Pooled", "model": "InvariantGNN",
            "model_kwargs": {"width": 32, "n_blocks": 2, "n_rbf": 16},
            "epochs": 10, "batch_size": 32, "lr": 2e-3,
        },
    },
    # reference episodes (held-out tasks) for the reproducibility fingerprints and sanity numbers
    "check": {"k": 5, "episode_seed": 0, "n_points": 8, "sanity_episodes": 3},
    # in-task ceiling of every held-out task (nanonb.baselines.ceiling.in_task_ceiling)
    "ceiling": {"n_splits": 5, "n_restarts": 0, "seed": 0},
}
