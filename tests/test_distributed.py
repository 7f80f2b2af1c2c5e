"""seqae.distributed: sharding batches between processes and merging their totals (pure functions), and the
single-process environment. Real data-parallel runs are in tests/training/test_ddp.py."""

from __future__ import annotations

import math

import pytest
import torch

from seqae import distributed
from seqae.errors import SeqaeError


@pytest.mark.parametrize(
    ("n", "batch_size", "world", "drop_last"),
    [(60, 16, 2, True), (61, 12, 4, True), (10, 16, 4, False), (7, 16, 2, False), (100, 30, 3, False)],
)
def test_shard_batches_are_disjoint_equal_parts_of_the_single_process_batches(n, batch_size, world, drop_last):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    single = distributed.shard_batches(order, batch_size, 0, 1, drop_last)
    # One process: exactly the batches of the order, as before data parallelism.
    stop = n - n % batch_size if drop_last else n
    expected = [order[lo : min(lo + batch_size, stop)].tolist() for lo in range(0, stop, batch_size)]
    assert [b.tolist() for b in single] == expected
    shards = [distributed.shard_batches(order, batch_size, rank, world, drop_last) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # as many steps in every process
    for step, batch in enumerate(single):
        parts = [s[step] for s in shards]
        assert len({p.numel() for p in parts}) == 1 and parts[0].numel() == batch.numel() // world
        together = torch.cat(parts)
        assert together.unique().numel() == together.numel()  # disjoint
        # Cover the batch but for the same (< world) last positions of a ragged one.
        assert together.tolist() == batch[: together.numel()].tolist()
        assert batch.numel() - together.numel() < world
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        distributed.shard_batches(order, batch_size, 2, 2, drop_last)


def test_shard_batches_drops_batches_smaller_than_the_processes():
    order = torch.arange(5)
    assert [b.tolist() for b in distributed.shard_batches(order, 4, 1, 2, drop_last=False)] == [[2, 3]]
    assert distributed.shard_batches(torch.arange(1), 4, 0, 2, drop_last=False) == []


def test_round_robin_batches_deal_whole_file_order_batches():
    parts = [distributed.round_robin_batches(50, 16, rank, 3) for rank in range(3)]
    assert [[b.tolist()[0] for b in p] for p in parts] == [[0, 48], [16], [32]]
    assert sorted(torch.cat([torch.cat(p) for p in parts]).tolist()) == list(range(50))
    assert distributed.round_robin_batches(10, 16, 1, 2) == []


def test_merge_totals_and_first_bad_step():
    a = {("loss", "acc"): ([10.0, 4.0], 8), ("x",): ([3.0], 3)}
    b = {("loss", "acc"): ([6.0, 4.0], 8)}
    assert distributed.merge_totals([a, b]) == {"loss": 1.0, "acc": 0.5, "x": 1.0}
    assert distributed.merge_totals([{}, {}]) == {}
    assert distributed.first_bad_step([(-1, 0.0), (-1, 0.0)]) == (-1, 0.0)
    step, value = distributed.first_bad_step([(7, math.inf), (5, math.nan), (-1, 0.0)])
    assert step == 5 and math.isnan(value)


def test_single_process_environment(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.env_world() == distributed.SINGLE
    with distributed.process_group("cpu") as ctx:
        assert ctx == distributed.SINGLE and not torch.distributed.is_initialized()
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert distributed.env_world() == distributed.Dist(rank=2, world_size=4, local_rank=0)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(SeqaeError, match="RANK=4 and WORLD_SIZE=4"):
        distributed.env_world()
