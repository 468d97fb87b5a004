using JestMesh.Data;
using JestMesh.Protos.V1;
using JestMesh.TestKit;

namespace JestMesh.Trainer.Tests;

/// <summary>The whole pipeline with every real service: Ingest → Scoring → Selection → Trainer.</summary>
[Collection(SelectionCollection.Name)]
[Trait("Tier", "EndToEnd")]
public sealed class PipelineTests : IDisposable
{
    private const int N = 160;
    private const int SuperBatches = 12;
    private readonly string _root = Directory.CreateTempSubdirectory("jm-pipeline-").FullName;

    [Fact]
    public async Task Ingest_scoring_selection_trainer_account_for_every_id_in_one_trace_per_super_batch()
    {
        using var spans = new SpanRecorder();
        var messaging = TestBroker.Shared().Options(TestNames.Unique("pipeline"));
        var data = PairDataset.Build(new DataOptions { Seed = 0 });
        var reference = TestReference.SaveUntrained(Path.Combine(_root, "reference"), data, seed: 1234);
        await using var pipeline = await PipelineHosts.StartAsync(messaging, reference, data, "pipe", N, SuperBatches);
        var produced = pipeline.Produced;
        var selection = pipeline.Selection;

        var options = new TrainerOptions
        {
            SelectionAddress = $"http://127.0.0.1:{selection.Port}",
            ApiKey = SelectionHost.ApiKey,
            Job = "pipe",
            Policy = Policy.Learnability,
            FilterRatio = 0.8,
            Chunks = 4,
            Gain = 10,
            Steps = SuperBatches,
            WarmupSteps = 2,
            EvalEvery = 0,
            CheckpointDirectory = Path.Combine(_root, "trainer"),
        };
        var trained = await PipelineHosts.TrainAsync(options);

        var accounted = trained.SelectMany(b => b.Examples.Select(e => e.Id).Concat(b.FilteredIds)).ToList();
        Assert.Equal(produced.ExampleIds.Count, accounted.Count);
        Assert.Equal(produced.ExampleIds.Order(), accounted.Order());
        var ingestTraces = spans.Stopped.Where(a => a.OperationName == "ingest.publish").Select(a => a.TraceId).ToHashSet();
        var stepTraces = spans.Stopped.Where(a => a.OperationName == "trainer.step").Select(a => a.TraceId).ToList();
        Assert.Equal(SuperBatches, stepTraces.Distinct().Count());
        Assert.All(stepTraces, t => Assert.Contains(t, ingestTraces));
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
