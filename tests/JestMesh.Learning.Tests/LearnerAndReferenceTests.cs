using JestMesh.Data;
using JestMesh.Models;

namespace JestMesh.Learning.Tests;

/// <summary>The TorchSharp runtime is not parallel-safe: these tests run one at a time.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection : ICollectionFixture<PoolFixture>
{
    public const string Name = "TorchSharp";
}

/// <summary>The real Fashion-MNIST pool, built once.</summary>
public sealed class PoolFixture
{
    public PairDataset Data { get; } = PairDataset.Build(new DataOptions { Seed = 0 });
}

[Trait("Tier", "Unit")]
[Collection(TorchCollection.Name)]
public sealed class LearnerAndReferenceTests(PoolFixture pool) : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("jm-learning-").FullName;

    [Fact]
    public async Task Reference_rows_come_from_the_cache_once_embedded_and_equal_a_fresh_pass()
    {
        var checkpoint = Path.Combine(_root, "reference");
        TorchSharp.torch.manual_seed(11);
        using (var model = SiglipModel.Create(new ModelConfig(), TorchSharp.torch.CPU))
        {
            ModelCheckpoint.Save(checkpoint, model, new CheckpointMetadata { DataFingerprint = pool.Data.Fingerprint });
        }
        using var scorer = await ReferenceScorer.LoadAsync(checkpoint, "cpu", batchSize: 100, cacheCapacity: 1000);
        var candidates = ExampleBatch.FromPool(pool.Data, Enumerable.Range(0, 300).ToArray());
        var asked = new List<int[]>();
        ExampleBatch Inputs(int[] misses)
        {
            asked.Add(misses);
            return candidates.Rows(misses);
        }

        var first = await scorer.ScoreAsync(candidates.Ids, Inputs);
        Assert.Equal(0, first.CacheHits);
        // A super-batch that overlaps the first: only the new examples reach the model.
        var overlap = ExampleBatch.FromPool(pool.Data, Enumerable.Range(200, 200).ToArray());
        var second = await scorer.ScoreAsync(overlap.Ids, misses => overlap.Rows(misses));
        Assert.Equal(100, second.CacheHits);
        Assert.Equal(first.Image.AsSpan(200 * first.Dim, 100 * first.Dim).ToArray(), second.Image.AsSpan(0, 100 * first.Dim).ToArray());

        var again = await scorer.ScoreAsync(candidates.Ids, Inputs);
        Assert.Equal(300, again.CacheHits);
        Assert.Single(asked);
        Assert.Equal(first.Image, again.Image);
        Assert.Equal(first.Text, again.Text);
        // Rows are L2-normalised, as the curation step requires.
        CurationStep.RequireNormalisedRows(first.Image, first.Count, first.Dim, "reference image");
    }

    [Fact]
    public void A_restored_checkpoint_scores_and_trains_exactly_as_the_session_that_wrote_it()
    {
        var options = new LearnerOptions { Steps = 10, Seed = 5, EvalEvery = 0 };
        var candidates = ExampleBatch.FromPool(pool.Data, Enumerable.Range(0, 256).ToArray());
        var batch = candidates.Rows(Enumerable.Range(0, 64).ToArray());
        var next = candidates.Rows(Enumerable.Range(64, 64).ToArray());
        using var original = new LearnerSession(options, null);
        original.Train(batch);
        original.Train(batch);
        original.Save(_root, new LearnerState { Step = original.Step, Cursor = 2, SessionId = "s", Job = "j" });

        using var restored = new LearnerSession(options with { Seed = 99 }, null);
        var state = restored.TryRestore(_root);
        Assert.NotNull(state);
        Assert.Equal((2, 2L, "s", "j"), (state!.Step, state.Cursor, state.SessionId, state.Job));
        Assert.Equal(2, restored.Step);
        var a = original.Score(candidates);
        var b = restored.Score(candidates);
        Assert.Equal(a.Image.ToArray(), b.Image.ToArray());
        Assert.Equal((a.Alpha, a.Beta), (b.Alpha, b.Beta));
        // The optimiser's moments and the schedule's position came back too: the next step is equal.
        Assert.Equal(original.Train(next), restored.Train(next));
        Assert.Equal(original.Score(candidates).Text.ToArray(), restored.Score(candidates).Text.ToArray());
    }

    [Fact]
    public void Evaluation_is_due_every_eval_every_steps_and_at_the_last_step()
    {
        using var evaluator = new Evaluator(pool.Data, limit: 200);
        using var learner = new LearnerSession(new LearnerOptions { Steps = 5, EvalEvery = 2 }, evaluator);
        var batch = ExampleBatch.FromPool(pool.Data, Enumerable.Range(0, 32).ToArray());
        var due = new List<int>();
        for (var step = 1; step <= 5; step++)
        {
            learner.Train(batch);
            if (learner.EvaluationDue)
            {
                due.Add(learner.Step);
                Assert.Equal(learner.Step, learner.Evaluate().Step);
            }
        }
        Assert.Equal([2, 4, 5], due);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
