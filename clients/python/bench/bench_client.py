#!/usr/bin/env python3
"""Client overhead of jestmesh's Python client per training step, as a share of the step, written as JSON.

    python3 clients/python/bench/bench_client.py --address 127.0.0.1:50051 --api-key K --job bench \
        --steps 200 --out bench-client.json

Runs the example's SigLIP learner (examples/train_siglip.py) on a JEST session (f = 0.8: b = 128 of
N = 640) and times, per step: protobuf decoding of every response (candidate + batch) and encoding of
every request (scores, acks), converting examples to NumPy arrays and checking/packing the scores, the
time blocked on the stream (the service selecting and recording the batch, plus transport), and the
learner's own scoring and training. Client overhead = decode + encode + conversion + score checks;
the stream wait is reported beside it with the service's selection time from the batch diagnostics.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))
sys.path.insert(0, os.path.join(HERE, "..", "examples"))
import jestmesh  # noqa: E402
from jestmesh._proto import service_methods  # noqa: E402
import train_siglip as ex  # noqa: E402


class Timed:
    def __init__(self):
        self.seconds = 0.0
        self.calls = 0

    def wrap(self, fn):
        def timed(arg):
            started = time.perf_counter()
            try:
                return fn(arg)
            finally:
                self.seconds += time.perf_counter() - started
                self.calls += 1
        return timed


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--address", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--job", default="bench")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20, help="steps left out of the figures")
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=None, help="torch threads (1 is faster on a busy machine)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    model = ex.SigLIP(len(ex.WORDS))
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=1e-4)

    @torch.no_grad()
    def score(candidate):
        model.eval()
        img = model.images(torch.from_numpy(np.array(candidate.images)))
        txt = model.texts(torch.from_numpy(candidate.tokens.astype(np.int64)))
        model.train()
        return img.numpy(), txt.numpy(), model.log_t.exp().item(), model.bias.item()

    decode, encode = Timed(), Timed()
    with jestmesh.CurationClient(args.address, args.api_key) as client:
        path, request, response, _, _ = service_methods()["Curate"]
        client.curate = client._channel.stream_stream(path, request_serializer=encode.wrap(request.SerializeToString),
                                                      response_deserializer=decode.wrap(response.FromString))
        stream = jestmesh.CuratedBatches(client, args.job, score=score, steps=args.steps)
        rows = []
        selection_ms = []
        last = None
        before = None
        for batch in stream:
            now = time.perf_counter()
            if batch.sequence == args.warmup:
                before = (dict(stream.stats), decode.seconds, encode.seconds, now)
            if batch.sequence > args.warmup:
                selection_ms.append(batch.diagnostics["selection_ms"])
            t0 = time.perf_counter()
            loss = model.loss(torch.from_numpy(np.array(batch.images)), torch.from_numpy(batch.tokens.astype(np.int64)))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            rows.append(time.perf_counter() - t0)
            last = batch
        end = (dict(stream.stats), decode.seconds, encode.seconds, time.perf_counter())
        stream.close()

    steps = args.steps - args.warmup
    stats0, dec0, enc0, t_start = before
    stats1, dec1, enc1, t_end = end
    per_step = lambda a, b: 1000 * (b - a) / steps  # noqa: E731
    step_ms = per_step(t_start, t_end)
    decode_ms = per_step(dec0, dec1)
    encode_ms = per_step(enc0, enc1)
    convert_ms = per_step(stats0["convert_s"], stats1["convert_s"])
    checks_ms = per_step(stats0["encode_s"], stats1["encode_s"])
    wait_ms = per_step(stats0["wait_s"], stats1["wait_s"])
    score_ms = per_step(stats0["score_s"], stats1["score_s"])
    train_ms = 1000 * float(np.mean(rows[args.warmup:]))
    overhead_ms = decode_ms + encode_ms + convert_ms + checks_ms
    result = {
        "what": "jestmesh Python client overhead per JEST step (b = 128, N = 640, exact: ScoreAhead 0)",
        "steps_measured": steps,
        "batch_size": int(len(last.ids)),
        "super_batch_size": int(len(last.ids) + len(last.filtered_ids)),
        "step_ms": step_ms,
        "client_overhead_ms": overhead_ms,
        "client_overhead_share": overhead_ms / step_ms,
        "breakdown_ms": {
            "protobuf_decode": decode_ms,
            "protobuf_encode": encode_ms,
            "to_numpy_arrays": convert_ms,
            "score_checks_and_packing": checks_ms,
            "stream_wait_incl_decode": wait_ms,
            "service_selection_mean": float(np.mean(selection_ms)),
            "learner_score": score_ms,
            "learner_train": train_ms,
        },
        "stream_wait_share": wait_ms / step_ms,
        "target_share": 0.05,
        "python": platform.python_version(),
        "protobuf_implementation": __import__("google.protobuf.internal.api_implementation", fromlist=["Type"]).Type(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
