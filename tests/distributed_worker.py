"""One rank of the multi-process tests of safe_greedy.distributed.

tests/test_distributed.py calls run_rank() in processes forked from one
server that has imported torch once; by hand, start one process per rank:

    python3 tests/distributed_worker.py --backend gloo --world 3 --rank 0 \
        --init file:///tmp/store [--device cuda]

Every rank builds the same cases from the same seed: the full rows, how they
are cut into shards, which rank holds which slice. Each rank runs
sgd.greedy_sample on its slice and compares its own answer with torch.argmax
of the full row; the result file lists the cases run and every mismatch.
One process group serves all the cases, so a world size costs one start-up.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys

import torch
import torch.distributed as dist

import safe_greedy.distributed as sgd

NAN = float("nan")
INF = float("inf")
DTYPES = (torch.float32, torch.bfloat16, torch.float16)
# What padding columns hold: values that would win if they were ever read as real.
PADDING_FILL = (INF, NAN, -NAN, 1e30)


def cut(width: int, pieces: int, rng: random.Random, kind: str) -> list:
    """Widths of `pieces` consecutive slices that together hold `width` columns."""
    if kind == "even":
        each = -(-width // pieces)
        return [max(0, min(each, width - i * each)) for i in range(pieces)]
    if kind == "one holds all":
        widths = [0] * pieces
        widths[rng.randrange(pieces)] = width
        return widths
    points = sorted(rng.randint(0, width) for _ in range(pieces - 1))
    return [b - a for a, b in zip([0] + points, points + [width])]


def make_rows(batch: int, vocab: int, kind: str, gen: torch.Generator, bounds: list) -> torch.Tensor:
    """fp32 rows of a kind; `bounds` are the slices' [lo, hi), for cases that need to know them."""
    x = torch.randn(batch, vocab, generator=gen)
    nonempty = [(lo, hi) for lo, hi in bounds if lo < hi]
    rng = random.Random(int(torch.randint(0, 2**31, (1,), generator=gen)))
    if kind == "all -inf":
        x.fill_(-INF)
    elif kind == "all nan":
        x.fill_(NAN)
    elif kind == "nan on one rank":
        for r in range(batch):
            lo, hi = rng.choice(nonempty)
            x[r, rng.randrange(lo, hi)] = rng.choice([NAN, -NAN])
    elif kind == "nan on several ranks":
        for r in range(batch):
            for lo, hi in rng.sample(nonempty, min(len(nonempty), rng.randint(1, 3))):
                x[r, rng.randrange(lo, hi)] = NAN
    elif kind == "ties across ranks":
        # The maximum in every slice (3.5 beats every randn here), so the lowest global index must win.
        for lo, hi in nonempty:
            x[:, rng.randrange(lo, hi)] = 7.5
    elif kind == "few values":
        x = torch.randint(-2, 3, (batch, vocab), generator=gen).float()
    elif kind == "signed zeros":
        x = torch.where(torch.rand(batch, vocab, generator=gen) < 0.5, -0.0, 0.0)
        x[torch.rand(batch, vocab, generator=gen) < 0.05] = -1.0
    elif kind == "-inf and +inf":
        x[torch.rand(batch, vocab, generator=gen) < 0.3] = -INF
        x[torch.rand(batch, vocab, generator=gen) < 0.01] = INF
    elif kind == "negative":
        x = x - 1e4
    return x


def build_cases(world: int, seed: int) -> list:
    rng = random.Random(seed)
    kinds = ["normal", "all -inf", "all nan", "nan on one rank", "nan on several ranks",
             "ties across ranks", "few values", "signed zeros", "-inf and +inf", "negative"]
    cuts = ["even", "uneven", "one holds all"]
    cases = []
    # Every kind with every cut, then random mixtures, then real vocabularies.
    for kind in kinds:
        for how in cuts:
            cases.append(dict(kind=kind, cut=how, vocab=rng.choice([1, 2, 7, 33, 100, 1000, 4099]),
                              batch=rng.choice([1, 2, 3, 5])))
    for _ in range(40):
        cases.append(dict(kind=rng.choice(kinds), cut=rng.choice(cuts), vocab=rng.randint(1, 3000),
                          batch=rng.choice([1, 2, 3, 4, 7])))
    for vocab in (128256, 151936, 151666):
        cases.append(dict(kind=rng.choice(["normal", "nan on one rank", "ties across ranks"]),
                          cut="even", vocab=vocab, batch=2))
    cases.append(dict(kind="normal", cut="uneven", vocab=50, batch=0))
    for i, case in enumerate(cases):
        case["seed"] = seed * 1000 + i
        case["dtype"] = rng.choice(DTYPES)
        case["out_dtype"] = rng.choice((torch.int32, torch.int64))
        # Engines pad the vocabulary to a multiple of the TP size; sometimes much more.
        case["padding"] = rng.choice([0, 0, (-case["vocab"]) % world, rng.randint(1, 2 * world)])
        case["order"] = rng.sample(range(world), world)
        case["layout"] = rng.choice(["view", "view", "contiguous", "column stride"])
        case["pass_vocab_size"] = case["padding"] > 0 or rng.random() < 0.5
        case["padding_fill"] = rng.choice(PADDING_FILL)
    return cases


def run_case(case: dict, rank: int, world: int, device: torch.device, group=None) -> str:
    """'' when this rank's answer equals torch.argmax of the full row, else what went wrong."""
    gen = torch.Generator().manual_seed(case["seed"])
    rng = random.Random(case["seed"])
    vocab, batch = case["vocab"], case["batch"]
    padded = vocab + case["padding"]
    widths = cut(padded, world, rng, case["cut"])
    starts = [sum(widths[:i]) for i in range(world)]
    # Slice i of the row goes to rank order[i]: ranks need not hold slices in rank order.
    bounds = [(starts[i], starts[i] + widths[i]) for i in range(world)]
    real_bounds = [(min(lo, vocab), min(hi, vocab)) for lo, hi in bounds]
    full = torch.full((batch, padded), case["padding_fill"])
    full[:, :vocab] = make_rows(batch, vocab, case["kind"], gen, real_bounds)
    full = full.to(case["dtype"])
    expected = torch.argmax(full[:, :vocab], -1) if batch else torch.empty(0, dtype=torch.int64)

    lo, hi = bounds[case["order"].index(rank)]
    if case["layout"] == "column stride":
        shard = full.t().contiguous().t()[:, lo:hi]
    elif case["layout"] == "contiguous":
        shard = full[:, lo:hi].contiguous()
    else:
        shard = full[:, lo:hi]  # a strided view of the padded row
    shard = shard.to(device)
    out = torch.full((batch,), -7, dtype=case["out_dtype"], device=device)
    vocab_size = vocab if case["pass_vocab_size"] else None
    sgd.greedy_sample(out, shard, vocab_offset=lo, vocab_size=vocab_size, group=group)
    got = out.cpu().to(torch.int64)
    if not torch.equal(got, expected):
        return (f"{ {k: str(v) for k, v in case.items()} } widths={widths}: "
                f"got {got.tolist()}, torch.argmax gives {expected.tolist()}")
    return ""


def run_rank(backend: str, world: int, rank: int, init: str, device: str = "cpu", seed: int = 22) -> dict:
    """Join the group, run every case, leave; {"rank", "cases", "failures"}."""
    torch.set_num_threads(1)  # the ranks share the machine's cores
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(rank % torch.cuda.device_count())
        device = torch.device("cuda", torch.cuda.current_device())
    dist.init_process_group(backend, init_method=init, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=60))
    failures, ran = [], 0
    for case in build_cases(world, seed):
        failure = run_case(case, rank, world, device)
        ran += 1
        if failure:
            failures.append(failure)

    # An explicit group whose ranks are listed out of order, and, with three
    # or more ranks, a group of only some of them (the others sit it out).
    groups = [(dist.new_group(list(reversed(range(world)))), list(reversed(range(world))))]
    if world >= 3:
        groups.append((dist.new_group([0, 2]), [0, 2]))
    for group, members in groups:
        if rank not in members:
            continue
        group_rank = dist.get_rank(group)
        for case in build_cases(len(members), seed + 1)[:10]:
            failure = run_case(case, group_rank, len(members), device, group=group)
            ran += 1
            if failure:
                failures.append(f"group {members}: {failure}")

    # The two halves around a reduction of the engine's own: gather every
    # rank's keys and take their max in a shuffled order.
    x = torch.randn(4, 1000, generator=torch.Generator().manual_seed(seed))
    x[1, 900] = NAN
    x[2] = -INF
    lo, hi = rank * 1000 // world, (rank + 1) * 1000 // world
    keys = sgd.local_keys(x[:, lo:hi].to(device), vocab_offset=lo, vocab_size=1000)
    gathered = [torch.empty_like(keys) for _ in range(world)]
    dist.all_gather(gathered, keys)
    random.Random(rank).shuffle(gathered)
    reduced = gathered[0]
    for k in gathered[1:]:
        reduced = torch.maximum(reduced, k)
    got = sgd.keys_to_tokens(reduced).cpu()
    ran += 1
    if not torch.equal(got, torch.argmax(x, -1)):
        failures.append(f"own reduction: got {got.tolist()}, torch.argmax gives {torch.argmax(x, -1).tolist()}")

    if device.type == "cuda":
        failure = graph_replay_case(rank, world, device)
        ran += 1
        if failure:
            failures.append(failure)

    dist.barrier()
    dist.destroy_process_group()
    return {"rank": rank, "cases": ran, "failures": failures}


def graph_replay_case(rank: int, world: int, device: torch.device) -> str:
    """sgd.greedy_sample captured in a CUDA graph (NCCL allows capturing its collectives), replayed on new logits."""
    vocab, batch = 32000, 8
    width = -(-vocab // world)
    full = torch.empty(batch, width * world, dtype=torch.bfloat16)
    shard = torch.empty(batch, width, dtype=torch.bfloat16, device=device)
    out = torch.full((batch,), -7, dtype=torch.int32, device=device)
    offset = rank * width

    def step():
        sgd.greedy_sample(out, shard, vocab_offset=offset, vocab_size=vocab)

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        step()  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    for replay in range(3):
        full.copy_(torch.randn(full.shape, generator=torch.Generator().manual_seed(replay)))
        full[replay, replay * 997 % vocab] = NAN
        shard.copy_(full[:, offset:offset + width])
        out.fill_(-7)
        graph.replay()
        got = out.cpu().to(torch.int64)
        expected = torch.argmax(full[:, :vocab], -1)
        if not torch.equal(got, expected):
            return f"graph replay {replay}: got {got.tolist()}, torch.argmax gives {expected.tolist()}"
    return ""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="gloo")
    parser.add_argument("--world", type=int, required=True)
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--init", required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=22)
    args = parser.parse_args()
    result = run_rank(args.backend, args.world, args.rank, args.init, args.device, args.seed)
    print(json.dumps(result))
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
