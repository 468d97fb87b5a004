"""A trainer SIGKILLed after its checkpoint at batch 20 resumes from state_dict exactly where an uninterrupted run goes on."""

import json
import os
import subprocess
import sys
import threading

from conftest import HERE, deadline


def test_sigkilled_trainer_resumes_at_21_with_the_batches_of_an_uninterrupted_run(up, client, uninterrupted, tmp_path):
    import jestmesh
    from helpers import Recorder

    reference, _, _ = uninterrupted
    checkpoint = str(tmp_path / "checkpoint.json")
    child = subprocess.Popen([sys.executable, str(HERE / "child_trainer.py"), up.address, up.key, "b", checkpoint],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    got_past = threading.Event()

    def read():
        for line in child.stdout:
            seen.append(line.strip())
            if line.startswith("received 2"):  # batches 21.. arrived after the checkpoint
                got_past.set()
        got_past.set()

    threading.Thread(target=read, daemon=True).start()
    finished = got_past.wait(600)
    child.kill()  # SIGKILL: no close(), no goodbye to the service
    child.wait()
    assert finished and "checkpointed 20" in seen, f"child trainer output: {seen}\n{child.stderr.read()}"
    assert child.returncode == -9

    with open(checkpoint) as f:
        saved = json.load(f)
    assert saved["stream"]["cursor"] == 20
    assert saved["ids"] == reference[19].ids.tolist(), "job b's batch 20 differs from job a's: the runs are not comparable"

    recorder = Recorder()
    with deadline(600, "resume after SIGKILL"):
        with jestmesh.CuratedBatches(client, "b", score=recorder, steps=50) as stream:
            stream.load_state_dict(saved["stream"])
            resumed = list(stream)
    assert [b.sequence for b in resumed] == list(range(21, 51))
    assert resumed[0].replayed, "batch 21 reached the killed trainer, so the service recorded it and must replay it"
    for mine, theirs in zip(resumed, reference[20:]):
        assert mine.ids.tolist() == theirs.ids.tolist(), f"batch {mine.sequence} differs from the uninterrupted run"
        assert mine.filtered_ids.tolist() == theirs.filtered_ids.tolist()
    os.remove(checkpoint)
