"""JestMesh's Python client: curated batches from a JestMesh Selection service for any trainer.

    import jestmesh
    with jestmesh.CurationClient("127.0.0.1:50051", api_key) as client, \
         jestmesh.CuratedBatches(client, "mine", score=my_scores) as batches:
        for batch in batches:
            train(batch.images, batch.tokens)
"""

from .batches import Batch, Candidate, CuratedBatches
from .client import CurationClient
from .errors import JestMeshError, ProtocolError, ScoreError

__all__ = ["Batch", "Candidate", "CuratedBatches", "CurationClient", "JestMeshError", "ProtocolError", "ScoreError"]
__version__ = "0.1.0"
