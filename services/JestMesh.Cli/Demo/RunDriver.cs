using System.Globalization;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Cli.Demo;

/// <summary>
/// Drives one learner run through the services: starts its Ingest and Trainer on the <see cref="LocalPipeline"/>,
/// follows it through public contracts (the trainer's run summary for progress and data stall, the batch log and
/// queue depths for the health line), waits for it, and hands what it left to <see cref="RunResults"/>. The run's job is
/// <paramref name="jobPrefix"/> and its slug: a pipeline that runs several runs needs one job per run.
/// </summary>
internal sealed class RunDriver(LocalPipeline pipeline, DemoPlan plan, string outDirectory, string jobPrefix = "demo-")
{
    /// <summary>How long after the Trainer exits its final run summary and the last batch-log records may take.</summary>
    private static readonly TimeSpan SettleDeadline = TimeSpan.FromSeconds(60);

    /// <summary>How long the trainer may be past its first evaluation (by the batch log) without a run summary.</summary>
    private static readonly TimeSpan FirstSummaryDeadline = TimeSpan.FromMinutes(5);

    public async Task<RunData> RunAsync(RunPlan run, IProgressSink progress, IProgressSink health, CancellationToken cancellationToken)
    {
        var job = jobPrefix + run.Slug;
        var runDir = Path.Combine(outDirectory, "runs", run.Slug);
        if (Directory.Exists(runDir))
        {
            Directory.Delete(runDir, recursive: true);
        }

        Directory.CreateDirectory(runDir);
        var checkpoints = Path.Combine(runDir, "trainer");
        var summaryPath = RunSummaryFile.PathIn(checkpoints);
        var n = plan.SuperBatchSize(run.FilterRatio);
        await using var log = await pipeline.Probe.FollowLogAsync(LocalPipeline.LogStream, cancellationToken);
        progress.Start();
        var ingest = pipeline.Start("JestMesh.Ingest", IngestSettings(plan, job, n, plan.Steps, ((long)plan.Steps * n / 50_000) + 2), logName: "ingest-" + run.Slug);
        // Checkpoint where it evaluates anyway: the wall time per step leaves those steps out.
        var trainer = pipeline.Start("JestMesh.Trainer", TrainerSettings(pipeline, plan, run, job, checkpoints, checkpointEvery: plan.EvalEvery), logName: "trainer-" + run.Slug);

        var exit = trainer.WaitForExitAsync(cancellationToken);
        System.Diagnostics.Stopwatch? pastFirstEval = null;
        while (!exit.IsCompleted)
        {
            await Task.WhenAny(exit, Task.Delay(1000, cancellationToken));
            // Ingest may end by itself once it has published everything; only a failure stops the run.
            if (ingest.HasExited && ingest.ExitCode != 0)
            {
                throw new InvalidOperationException($"Ingest for {run.Name} exited (code {ingest.ExitCode}); its log {ingest.LogPath} ends:\n{ingest.Tail()}");
            }

            // No summary until the trainer's first evaluation: the bar waits at 0 until then. Once the batch log shows
            // the trainer well past that evaluation, a summary that still does not come is an error, not a wait.
            var summary = RunSummaryFile.TryRead(summaryPath);
            if (summary is null && log.Batches(job).Count > plan.EvalEvery + 4)
            {
                pastFirstEval ??= System.Diagnostics.Stopwatch.StartNew();
                if (pastFirstEval.Elapsed > FirstSummaryDeadline)
                {
                    throw new InvalidDataException($"the Trainer for {run.Name} is past step {plan.EvalEvery} (its first evaluation) but has written no " +
                        $"{summaryPath} in {FirstSummaryDeadline.TotalMinutes:0} min (a Trainer older than the run-summary contract, protos/jestmesh/v1/run_summary.proto?).");
                }
            }

            progress.Report(summary?.Step ?? 0, $"{run.Name}  {Describe(summary)}");
            health.Report(0, await HealthLineAsync(log, job, summary, cancellationToken));
        }

        await exit;
        if (trainer.ExitCode != 0)
        {
            throw new InvalidOperationException($"the Trainer for {run.Name} failed (exit {trainer.ExitCode}); its log {trainer.LogPath} ends:\n{trainer.Tail()}");
        }

        var final = await RunResults.WaitForFinishedAsync(summaryPath, SettleDeadline, cancellationToken);
        var batches = await log.WaitForAsync(job, plan.Steps, SettleDeadline, cancellationToken);
        await pipeline.StopAsync(ingest);
        await pipeline.StopAsync(trainer);
        var dead = (await pipeline.Probe.DrainDeadLettersAsync(LocalPipeline.DeadLetterQueue, cancellationToken)).GetValueOrDefault(job);
        if (batches.Any(b => !b.DistinctIds))
        {
            throw new InvalidDataException($"job {job}: a curated batch repeats an example id among its selected and filtered ids.");
        }

        var data = RunResults.FromServices(run, plan, final, batches, dead);
        progress.Report(plan.Steps, $"{run.Name}  final zero-shot {data.Eval[^1].ZeroShotAcc:P1}");
        progress.Stop();
        return data;
    }

    /// <summary>
    /// A Trainer's settings for <paramref name="run"/> on <paramref name="job"/> against the pipeline's Selection replicas (every
    /// address: one that refuses the job or dies sends the trainer on to the next); shared with <c>./jestmesh chaos</c>.
    /// </summary>
    internal static Dictionary<string, string> TrainerSettings(LocalPipeline pipeline, DemoPlan plan, RunPlan run, string job, string checkpoints, int checkpointEvery) => new()
    {
        ["Trainer__SelectionAddress"] = pipeline.SelectionAddresses,
        ["Trainer__ApiKey"] = pipeline.ApiKey,
        ["Trainer__Job"] = job,
        ["Trainer__Policy"] = run.TrainerPolicy,
        ["Trainer__FilterRatio"] = run.FilterRatio.ToString(CultureInfo.InvariantCulture),
        ["Trainer__Chunks"] = (run.Independent ? 1 : plan.Chunks).ToString(CultureInfo.InvariantCulture),
        ["Trainer__Gain"] = plan.Gain.ToString(CultureInfo.InvariantCulture),
        ["Trainer__ScoreResolution"] = run.ScoreResolution.ToString(CultureInfo.InvariantCulture),
        ["Trainer__Seed"] = plan.Seed.ToString(CultureInfo.InvariantCulture),
        ["Trainer__Steps"] = plan.Steps.ToString(CultureInfo.InvariantCulture),
        ["Trainer__EvalEvery"] = plan.EvalEvery.ToString(CultureInfo.InvariantCulture),
        ["Trainer__EvalLimit"] = plan.EvalLimit.ToString(CultureInfo.InvariantCulture),
        ["Trainer__DataSeed"] = plan.DataSeed.ToString(CultureInfo.InvariantCulture),
        ["Trainer__CheckpointEvery"] = checkpointEvery.ToString(CultureInfo.InvariantCulture),
        ["Trainer__CheckpointDirectory"] = checkpoints,
    };

    /// <summary>Ingest's settings for one job over the built-in pool (<paramref name="maxSuperBatches"/> 0: no limit); shared with <c>./jestmesh up</c>.</summary>
    internal static Dictionary<string, string> IngestSettings(DemoPlan plan, string job, int superBatchSize, int maxSuperBatches, long epochs) => new()
    {
        ["Ingest__Job"] = job,
        ["Ingest__SuperBatchSize"] = superBatchSize.ToString(CultureInfo.InvariantCulture),
        ["Ingest__MaxSuperBatches"] = maxSuperBatches.ToString(CultureInfo.InvariantCulture),
        ["Ingest__Epochs"] = epochs.ToString(CultureInfo.InvariantCulture),
        ["Ingest__DataSeed"] = plan.DataSeed.ToString(CultureInfo.InvariantCulture),
        // The learner's seed also orders the stream, as in `train --inproc --seed`.
        ["Ingest__OrderSeed"] = plan.Seed.ToString(CultureInfo.InvariantCulture),
        ["Ingest__SwappedShare"] = plan.SwappedShare.ToString(CultureInfo.InvariantCulture),
        ["Ingest__CuratedSize"] = plan.CuratedSize.ToString(CultureInfo.InvariantCulture),
    };

    private static string Describe(RunSummary? summary) =>
        summary is { Evaluations.Count: > 0 } s ? $"step {s.Evaluations[^1].Step}: zero-shot {s.Evaluations[^1].ZeroShotAcc:P1}" : "";

    private async Task<string> HealthLineAsync(BatchLogReader log, string job, RunSummary? summary, CancellationToken cancellationToken)
    {
        var depth = new List<string>();
        foreach (var (q, label) in new[] { (LocalPipeline.SuperBatchQueue, "super-batches"), (LocalPipeline.ScoredQueue, "scored"), (LocalPipeline.DeadLetterQueue, "dead") })
        {
            depth.Add($"{label} {(await pipeline.Probe.DepthAsync(q, cancellationToken))?.Messages.ToString(CultureInfo.InvariantCulture) ?? "–"}");
        }

        var recent = log.Batches(job).TakeLast(50).ToList();
        var latency = recent.Count == 0 ? "–" : $"{Stats.Quantile(recent.Select(b => b.SelectionMs).ToList(), 0.5):0.0} ms";
        var stall = summary is { WallSeconds: > 0 } s ? $"{s.DataStall:P1}" : "–";
        return $"queues: {string.Join(", ", depth)} | selection p50 {latency} | trainer stall {stall}";
    }
}
