using System.Text.Json;
using JestMesh.Cli.InProcess;
using JestMesh.Curation;
using JestMesh.Data;
using JestMesh.Data.WebDataset;
using JestMesh.TestKit;

namespace JestMesh.Cli.Tests;

/// <summary>TorchSharp tests of this project share one collection: the native runtime is not parallel-safe.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class TorchCollection
{
    public const string Name = "TorchSharp";
}

[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class LearnerLoopTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("jestmesh-loop-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Reference_trained_on_other_data_is_refused_with_both_settings()
    {
        var reference = SaveReference(new DataOptions { Seed = 1 });
        var settings = Settings(SelectionPolicy.Learnability, reference, new DataOptions { Seed = 2 });
        var e = Assert.Throws<InvalidOperationException>(() => LearnerLoop.Run(settings));
        Assert.Contains("data-seed=1", e.Message, StringComparison.Ordinal);
        Assert.Contains("data-seed=2", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_short_jest_run_writes_the_metrics_the_issue_specifies()
    {
        var data = new DataOptions { Seed = 3 };
        var reference = SaveReference(data);
        var settings = Settings(SelectionPolicy.Learnability, reference, data);
        var m = LearnerLoop.Run(settings);
        JsonFiles.Write(Path.Combine(settings.Out, "metrics.json"), m);

        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(settings.Out, "metrics.json")));
        var root = doc.RootElement;
        var evals = root.GetProperty("eval").EnumerateArray().ToArray();
        Assert.Equal(new[] { 2, 4 }, evals.Select(e => e.GetProperty("step").GetInt32()));
        Assert.All(evals, e => Assert.InRange(e.GetProperty("zero_shot_acc").GetDouble(), 0, 1));
        Assert.All(evals, e => Assert.InRange(e.GetProperty("r_at_1").GetDouble(), 0, 1));
        Assert.Equal(4, root.GetProperty("step_wall_ms").GetArrayLength());
        var shares = root.GetProperty("swapped_share").EnumerateArray().Select(x => x.GetDouble()).ToArray();
        Assert.Equal(4, shares.Length);
        Assert.All(shares, s => Assert.InRange(s, 0, 1));
        Assert.Equal(2, root.GetProperty("swapped_share_over_time").GetArrayLength());
        Assert.Equal(4, root.GetProperty("mean_chunk_entropy").GetArrayLength());
    }

    [Fact]
    public void Through_shards_written_by_data_wds_the_loop_gives_the_same_evaluations_as_the_built_in_pool_in_the_same_order()
    {
        var options = new DataOptions { Seed = 3 };
        var data = PairDataset.Build(options);
        var reference = TestReference.SaveUntrained(Path.Combine(_dir, "ref"), data, seed: 0);
        WdsWriter.WriteDataset(data, Path.Combine(_dir, "wds"), 1000);
        LearnerSettings Run(string name) => Settings(SelectionPolicy.Learnability, reference, options) with
        {
            Steps = 12, EvalEvery = 4, Seed = 5, Out = Path.Combine(_dir, name),
        };

        var builtIn = LearnerLoop.Run(Run("built-in") with { AsShards = 1000 });
        var shards = LearnerLoop.Run(Run("shards") with { WebDataset = Path.Combine(_dir, "wds", "pool") });

        Assert.Equal(3, builtIn.Eval.Count);
        Assert.Equal(builtIn.Eval, shards.Eval);
        Assert.Equal(builtIn.Loss, shards.Loss);
        Assert.Equal(builtIn.SwappedShare, shards.SwappedShare);
        Assert.Equal(0, shards.SkippedSamples);
        Assert.StartsWith("wds-", shards.DataFingerprint, StringComparison.Ordinal);
        // The whole-pool order of the built-in source is another order of the same data: another loss curve.
        Assert.NotEqual(builtIn.Loss, LearnerLoop.Run(Run("global")).Loss);
    }

    private LearnerSettings Settings(SelectionPolicy policy, string reference, DataOptions data) => new()
    {
        Policy = policy,
        BatchSize = 16,
        Chunks = 4,
        Steps = 4,
        EvalEvery = 2,
        Data = data,
        Reference = reference,
        Out = Path.Combine(_dir, "run"),
    };

    // An untrained model stands in for the reference: these tests check the loop's plumbing, not learning.
    private string SaveReference(DataOptions data) => TestReference.SaveUntrained(Path.Combine(_dir, "ref"), PairDataset.Build(data), seed: 0);
}
