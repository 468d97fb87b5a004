"""A trainer the kill test runs as a subprocess: consumes batches, checkpoints after batch 20, keeps going.

    child_trainer.py ADDRESS KEY JOB CHECKPOINT
Prints "checkpointed 20" once the checkpoint file is on disk, then "received N" for each later batch;
the test SIGKILLs it at an arbitrary point after that.
"""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jestmesh  # noqa: E402
from helpers import score  # noqa: E402

address, key, job, checkpoint = sys.argv[1:5]
with jestmesh.CurationClient(address, key) as client, jestmesh.CuratedBatches(client, job, score=score) as stream:
    for batch in stream:
        # "train" on the batch, then checkpoint model + stream state together.
        if batch.sequence == 20:
            tmp = checkpoint + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"ids": batch.ids.tolist(), "stream": stream.state_dict()}, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, checkpoint)
            print("checkpointed 20", flush=True)
        elif batch.sequence > 20:
            print(f"received {batch.sequence}", flush=True)
