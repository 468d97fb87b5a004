using System.Text.Json;
using JestMesh.Cli.Commands;
using JestMesh.Data;
using JestMesh.Protos.V1;
using JestMesh.TestKit;
using JestMesh.Trainer;

namespace JestMesh.Cli.Tests;

/// <summary>
/// With a fixed seed, the pipeline (Ingest → Scoring → Selection → Trainer over the real broker and
/// gRPC) selects exactly the batches `jestmesh train --inproc` selects with the same settings.
/// </summary>
[Collection(TorchCollection.Name)]
[Trait("Tier", "EndToEnd")]
public sealed class PipelineEquivalenceTests : IDisposable
{
    private const int Steps = 10;
    private const int Seed = 3;
    private readonly string _root = Directory.CreateTempSubdirectory("jm-equivalence-").FullName;

    [Fact]
    public async Task First_ten_curated_batches_equal_those_of_train_inproc()
    {
        var dataset = PairDataset.Build(new DataOptions { Seed = 0 });
        var reference = TestReference.SaveUntrained(Path.Combine(_root, "reference"), dataset, seed: 17);

        // The pipeline, at the experiment's settings (b = 128, f = 0.8 so N = 640, 16 chunks, gain 1).
        var messaging = TestBroker.Shared().Options(TestNames.Unique("equal"));
        await using var pipeline = await PipelineHosts.StartAsync(messaging, reference, dataset, "equal", 640, Steps, orderSeed: Seed);
        var selection = pipeline.Selection;

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
            // WarmupSteps unset: the learning core's rule, the same as `train --inproc`'s.
            EvalEvery = 0,
            CheckpointDirectory = Path.Combine(_root, "trainer"),
        };
        var trained = await PipelineHosts.TrainAsync(options);

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
            var served = trained[k].Examples.Select(e => e.Id).ToArray();
            var first = Enumerable.Range(0, Math.Min(served.Length, inProcess[k].Length)).FirstOrDefault(i => served[i] != inProcess[k][i], -1);
            Assert.True(inProcess[k].SequenceEqual(served),
                $"batch {k + 1}: the pipeline selected {served.Length} ids, train --inproc {inProcess[k].Length}; first difference at position {first} " +
                $"({(first < 0 ? "-" : $"{served[first]} vs {inProcess[k][first]}")}); {served.Intersect(inProcess[k]).Count()} ids in common.");
        }
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);
}
