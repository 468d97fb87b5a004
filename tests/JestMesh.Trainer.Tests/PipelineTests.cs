using System.Globalization;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.Scoring;
using JestMesh.Selection.Tests;
using JestMesh.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using TorchSharp;

namespace JestMesh.Trainer.Tests;

/// <summary>The whole pipeline with every real service: Ingest → Scoring → Selection → Trainer.</summary>
[Collection(SelectionCollection.Name)]
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
        var reference = Path.Combine(_root, "reference");
        torch.random.manual_seed(1234);
        using (var model = SiglipModel.Create(new ModelConfig(), torch.CPU))
        {
            ModelCheckpoint.Save(reference, model, new CheckpointMetadata { DataFingerprint = data.Fingerprint });
        }

        await using var selection = await SelectionHost.StartAsync(messaging, kestrel: true);
        var scoringSettings = PipelineHosts.Settings(messaging);
        scoringSettings["Scoring:ReferenceDirectory"] = reference;
        scoringSettings["Scoring:Device"] = "cpu";
        scoringSettings["Scoring:ExpectedDataFingerprint"] = data.Fingerprint;
        await using var scoring = await StartAsync("JestMesh.Scoring", scoringSettings, b => b.AddScoringServices());
        var ingestSettings = PipelineHosts.Settings(messaging);
        ingestSettings["Ingest:Job"] = "pipe";
        ingestSettings["Ingest:SuperBatchSize"] = N.ToString(CultureInfo.InvariantCulture);
        ingestSettings["Ingest:MaxSuperBatches"] = SuperBatches.ToString(CultureInfo.InvariantCulture);
        ingestSettings["Ingest:DataSeed"] = "0";
        await using var ingest = await StartAsync("JestMesh.Ingest", ingestSettings, b => b.AddIngestServices());
        var produced = await ingest.Services.GetRequiredService<IngestWorker>().Completion.WaitAsync(TimeSpan.FromMinutes(2));

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
        var trained = new List<CuratedBatch>();
        using (var channel = TrainerServiceExtensions.CreateChannel(options))
        using (var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance) { BatchTrained = trained.Add })
        {
            await trainer.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        }

        var accounted = trained.SelectMany(b => b.Examples.Select(e => e.Id).Concat(b.FilteredIds)).ToList();
        Assert.Equal(produced.ExampleIds.Count, accounted.Count);
        Assert.Equal(produced.ExampleIds.Order(), accounted.Order());
        var ingestTraces = spans.Stopped.Where(a => a.OperationName == "ingest.publish").Select(a => a.TraceId).ToHashSet();
        var stepTraces = spans.Stopped.Where(a => a.OperationName == "trainer.step").Select(a => a.TraceId).ToList();
        Assert.Equal(SuperBatches, stepTraces.Distinct().Count());
        Assert.All(stepTraces, t => Assert.Contains(t, ingestTraces));
    }

    private Task<WebApplication> StartAsync(string name, Dictionary<string, string?> settings, Action<WebApplicationBuilder> add) =>
        PipelineHosts.StartAsync(_root, name, settings, add);

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
