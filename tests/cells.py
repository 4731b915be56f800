"""A config at one cell of the feed x norm design, as the workflow hands it to a job (train.feed, model.d_norm)."""

from __future__ import annotations

import copy


def at(config: dict, feed: str, norm: str) -> dict:
    config = copy.deepcopy(config)
    config["train"]["feed"], config["model"]["d_norm"] = feed, norm
    if norm == "ghost_mixed" and config["model"].get("ghost_chunk") is None:  # its chunks have no default size
        config["model"]["ghost_chunk"] = config["train"]["batch_size"] // 2
    return config


def tag(feed: str, norm: str):
    """The run's record of that cell, as the workflow passes it (`ganablate train --cell feed=F,norm=N`)."""
    from ganablate.study.identity import RunTag

    return RunTag({"feed": feed, "norm": norm})
