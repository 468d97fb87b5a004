using System.Globalization;
using System.Text.Json;
using JestMesh.Cli.Commands;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Models;
using JestMesh.Protos.V1;
using JestMesh.Scoring;
using JestMesh.Selection.Tests;
using JestMesh.TestKit;
using JestMesh.Trainer;
using JestMesh.Trainer.Tests;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using static TorchSharp.torch;

namespace JestMesh.Cli.Tests;

/// <summary>
/// With a fixed seed, the pipeline (Ingest → Scoring → Selection → Trainer over the real broker and
/// gRPC) selects exactly the batches `jestmesh train --inproc` selects with the same settings.
/// </summary>
[Collection(TorchCollection.Name)]
public sealed class PipelineEquivalenceTests : IDisposable
{
    private const int Steps = 10;
    private const int Seed = 3;
    private readonly string _root = Directory.CreateTempSubdirectory("jm-equivalence-").FullName;

    [Fact]
    public async Task First_ten_curated_batches_equal_those_of_train_inproc()
    {
        var data = new DataOptions { Seed = 0 };
        var dataset = PairDataset.Build(data);
        var reference = Path.Combine(_root, "reference");
        // An untrained reference: the equality of the two paths does not need a good one.
        manual_seed(17);
        using (var model = SiglipModel.Create(new ModelConfig(), CPU))
        {
            ModelCheckpoint.Save(reference, model, new CheckpointMetadata { DataFingerprint = dataset.Fingerprint, DataSeed = data.Seed, SwappedShare = data.SwappedShare, CuratedSize = data.CuratedSize });
        }

        // The pipeline, at the experiment's settings (b = 128, f = 0.8 so N = 640, 16 chunks, gain 1).
        var messaging = TestBroker.Shared().Options(TestNames.Unique("equal"));
        await using var selection = await SelectionHost.StartAsync(messaging, kestrel: true);
        var scoring = PipelineHosts.Settings(messaging);
        scoring["Scoring:ReferenceDirectory"] = reference;
        scoring["Scoring:Device"] = "cpu";
        scoring["Scoring:ExpectedDataFingerprint"] = dataset.Fingerprint;
        await using var scoringHost = await PipelineHosts.StartAsync(_root, "JestMesh.Scoring", scoring, b => b.AddScoringServices());
        var ingest = PipelineHosts.Settings(messaging);
        ingest["Ingest:Job"] = "equal";
        ingest["Ingest:SuperBatchSize"] = "640";
        ingest["Ingest:MaxSuperBatches"] = Steps.ToString(CultureInfo.InvariantCulture);
        ingest["Ingest:OrderSeed"] = Seed.ToString(CultureInfo.InvariantCulture);
        await using var ingestHost = await PipelineHosts.StartAsync(_root, "JestMesh.Ingest", ingest, b => b.AddIngestServices());
        await ingestHost.Services.GetRequiredService<IngestWorker>().Completion.WaitAsync(TimeSpan.FromMinutes(2));

        var options = new TrainerOptions
        {
            SelectionAddress = $"http://127.0.0.1:{selection.Port}",
            ApiKey = SelectionHost.ApiKey,
            Job = "equal",
            Policy = Policy.Learnability,
            FilterRatio = 0.8,
            Chunks = 16,
            Gain = 1,
            Seed = Seed,
            Steps = Steps,
            // What `train --inproc` uses for T steps: min(100, max(1, T / 10)).
            WarmupSteps = 1,
            EvalEvery = 0,
            CheckpointDirectory = Path.Combine(_root, "trainer"),
        };
        var trained = new List<CuratedBatch>();
        using (var channel = TrainerServiceExtensions.CreateChannel(options))
        using (var trainer = new CuratedTrainer(options, channel, null, NullLogger.Instance) { BatchTrained = trained.Add })
        {
            await trainer.RunAsync(CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(3));
        }

        // The same settings through the command line of `jestmesh train --inproc`.
        var output = Path.Combine(_root, "inproc");
        var code = TrainCommand.Create().Parse([
            "--inproc", "--policy", "learnability", "--batch-size", "128", "--filter-ratio", "0.8", "--chunks", "16", "--gain", "1",
            "--steps", $"{Steps}", "--seed", $"{Seed}", "--eval-every", $"{Steps}", "--record-batches", $"{Steps}",
            "--reference", reference, "--out", output]).Invoke();
        Assert.Equal(0, code);
        using var metrics = JsonDocument.Parse(File.ReadAllText(Path.Combine(output, "metrics.json")));
        var inProcess = metrics.RootElement.GetProperty("batches").EnumerateArray()
            .Select(b => b.EnumerateArray().Select(id => id.GetInt64()).ToArray()).ToList();

        Assert.Equal(Steps, trained.Count);
        Assert.Equal(Steps, inProcess.Count);
        for (var k = 0; k < Steps; k++)
        {
            var pipeline = trained[k].Examples.Select(e => e.Id).ToArray();
            var first = Enumerable.Range(0, Math.Min(pipeline.Length, inProcess[k].Length)).FirstOrDefault(i => pipeline[i] != inProcess[k][i], -1);
            Assert.True(inProcess[k].SequenceEqual(pipeline),
                $"batch {k + 1}: the pipeline selected {pipeline.Length} ids, train --inproc {inProcess[k].Length}; first difference at position {first} " +
                $"({(first < 0 ? "-" : $"{pipeline[first]} vs {inProcess[k][first]}")}); {pipeline.Intersect(inProcess[k]).Count()} ids in common.");
        }
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
