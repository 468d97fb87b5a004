using JestMesh.Cli.Demo;
using JestMesh.Cli.InProcess;
using JestMesh.Models;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Cli.Tests.Demo;

[Trait("Tier", "Unit")]
public sealed class RunResultsTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "jestmesh-runresults-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    private static readonly DemoPlan Plan = DemoPlan.Create(quick: true, withF05: false, steps: 4, evalEvery: 1);

    private static RunSummary Summary(bool finished) => new()
    {
        SchemaVersion = 1,
        Job = "demo-jest-f0.8",
        Steps = 4,
        Step = finished ? 4 : 2,
        Finished = finished,
        Evaluations = { new RunEvaluation { Step = 2, ZeroShotAcc = 0.4, RAt1 = 0.1 }, new RunEvaluation { Step = 4, ZeroShotAcc = 0.5, RAt1 = 0.2 } },
        StepWallMs = { 10, 12, 14, 16 },
        WallSeconds = 10,
        WaitSeconds = 4,
        ScoreSeconds = 1,
        TrainSeconds = 2,
        EvalSeconds = 3,
        DataStall = 0.4,
    };

    private static LoggedBatch Batch(long sequence, string superBatch, int selected = 128, int filtered = 512) =>
        new("demo-jest-f0.8", "s", sequence, superBatch, selected, selected / 4, filtered, 2.5, true);

    [Fact]
    public void A_service_run_takes_evaluations_wall_times_and_stall_from_the_summary_and_accounting_from_the_batch_log()
    {
        var run = new RunPlan(RunNames.Learnability, false, 0.8);
        var data = RunResults.FromServices(run, Plan, Summary(true), [Batch(1, "a"), Batch(2, "b"), Batch(3, "c"), Batch(4, "d")], deadLettered: 640);
        Assert.Equal([new EvalRow(2, 0.4, 0.1), new EvalRow(4, 0.5, 0.2)], data.Eval);
        Assert.Equal([10.0, 12, 14, 16], data.StepWallMs);
        Assert.Equal(0.4, data.StallShare);
        Assert.Equal(new TrainerTime(10, 4, 3, 3, 4, ScoreS: 1), data.Time);
        Assert.Equal(750, data.Time!.LearnerMsPerStep);
        Assert.Equal((4 * 640) + 640, data.Produced);
        Assert.Equal(4 * 128, data.Trained);
        Assert.Equal(4 * 512, data.Filtered);
        Assert.Equal(data.Produced, data.Trained + data.Filtered + data.DeadLettered);
        Assert.All(data.SwappedShare, s => Assert.Equal(0.25, s));
    }

    [Fact]
    public void A_super_batch_curated_twice_unbalances_the_accounting()
    {
        var run = new RunPlan(RunNames.Learnability, false, 0.8);
        var data = RunResults.FromServices(run, Plan, Summary(true), [Batch(1, "a"), Batch(2, "a"), Batch(3, "c"), Batch(4, "d")], deadLettered: 0);
        Assert.NotEqual(data.Produced, data.Trained + data.Filtered + data.DeadLettered);
    }

    [Fact]
    public async Task A_summary_that_appears_finished_within_the_deadline_is_read()
    {
        var path = RunSummaryFile.PathIn(_dir);
        var wait = RunResults.WaitForFinishedAsync(path, TimeSpan.FromSeconds(20), CancellationToken.None);
        await Task.Delay(300);
        RunSummaryFile.Write(path, Summary(finished: false));
        await Task.Delay(300);
        Assert.False(wait.IsCompleted);
        RunSummaryFile.Write(path, Summary(finished: true));
        Assert.Equal(4, (await wait).Step);
    }

    [Fact]
    public async Task No_summary_by_the_deadline_is_refused_naming_the_directory()
    {
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => RunResults.WaitForFinishedAsync(RunSummaryFile.PathIn(_dir), TimeSpan.FromMilliseconds(300), CancellationToken.None));
        Assert.Contains(_dir, e.Message, StringComparison.Ordinal);
        Assert.Contains(RunSummaryFile.FileName, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void An_in_process_run_is_read_from_the_metrics_json_the_learner_loop_writes()
    {
        var m = new LearnerMetrics
        {
            Run = "jest", Policy = "learnability", Independent = false, FilterRatio = 0.8, SuperBatch = 640, BatchSize = 128, Chunks = 16, Gain = 1, Greedy = false,
            Steps = 4, Seed = 0, DataSeed = 0, SwappedShareOfPool = 0.7, DataFingerprint = "f", Reference = "r", Threads = 1, WallSeconds = 9,
        };
        m.Eval.Add(new EvalPoint(2, 0.4, 0.1));
        m.Eval.Add(new EvalPoint(4, 0.5, 0.2));
        m.StepWallMs.AddRange([1000, 1000, 1000, 1000]);
        m.LearnerScoringMs.AddRange([100, 100, 100, 100]);
        m.TrainMs.AddRange([500, 500, 500, 500]);
        m.SelectionMs.AddRange([3, 3, 3, 3]);
        m.SwappedShare.AddRange([0.5, 0.4, 0.3, 0.2]);
        var path = Path.Combine(_dir, "metrics.json");
        JsonFiles.Write(path, m);

        Assert.Equal(4, RunResults.InProcessSteps(path));
        Assert.Equal(0, RunResults.InProcessSteps(Path.Combine(_dir, "missing.json")));
        var data = RunResults.FromInProcess(new RunPlan(RunNames.Learnability, false, 0.8), Plan, path);
        Assert.Equal([new EvalRow(2, 0.4, 0.1), new EvalRow(4, 0.5, 0.2)], data.Eval);
        Assert.Equal([1000.0, 1000, 1000, 1000], data.StepWallMs);
        Assert.Equal([3.0, 3, 3, 3], data.SelectionMs);
        Assert.Equal([0.5, 0.4, 0.3, 0.2], data.SwappedShare);
        Assert.Equal(600, data.Time!.LearnerMsPerStep!.Value, 9);
        Assert.Equal(RunSource.InProcess, data.Source);
    }
}
