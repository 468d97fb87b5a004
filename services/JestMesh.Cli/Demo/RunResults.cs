using System.Text.Json;
using System.Text.RegularExpressions;
using JestMesh.Cli.InProcess;
using JestMesh.Models;
using JestMesh.Protos;
using JestMesh.Protos.V1;

namespace JestMesh.Cli.Demo;

/// <summary>
/// Reads what a run left behind through the services' public contracts only: the trainer's
/// <c>run-summary.json</c> (<see cref="RunSummaryFile"/>), the Selection service's batch log, the dead-letter
/// queue, the spans received over OTLP (names from <see cref="Telemetry.Spans"/>), and for in-process runs the
/// learner loop's <c>metrics.json</c>.
/// </summary>
internal static partial class RunResults
{
    /// <summary>
    /// The trainer's summary once it says the run is finished. A trainer writes its first summary after its first
    /// evaluation and its last one before it exits, so a missing or unfinished file is waited for up to
    /// <paramref name="deadline"/>, then refused naming the file.
    /// </summary>
    public static async Task<RunSummary> WaitForFinishedAsync(string path, TimeSpan deadline, CancellationToken cancellationToken)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var summary = RunSummaryFile.TryRead(path);
            if (summary is { Finished: true })
            {
                return summary;
            }

            if (clock.Elapsed > deadline)
            {
                throw new InvalidDataException(summary is null
                    ? $"the Trainer wrote no {RunSummaryFile.FileName} in {Path.GetDirectoryName(path)} within {deadline.TotalSeconds:0} s of its end " +
                      "(a Trainer older than the run-summary contract, protos/jestmesh/v1/run_summary.proto?)."
                    : $"{path} still says step {summary.Step} of {summary.Steps}, not finished, {deadline.TotalSeconds:0} s after the Trainer ended.");
            }

            await Task.Delay(250, cancellationToken);
        }
    }

    /// <summary>
    /// One service run's figures. Accounting: produced = the examples of every distinct super-batch the batch log
    /// records for the job (selected + filtered of its first curated batch) plus the examples dead-lettered; trained
    /// and filtered sum every curated batch, so a super-batch curated twice or an example lost from a batch unbalances it.
    /// </summary>
    public static RunData FromServices(RunPlan run, DemoPlan plan, RunSummary summary, IReadOnlyList<LoggedBatch> batches, long deadLettered)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(summary);
        ArgumentNullException.ThrowIfNull(batches);
        if (summary.Evaluations.Count == 0)
        {
            throw new InvalidDataException($"the run summary of {run.Name} (job {summary.Job}) holds no evaluations.");
        }

        var produced = batches.GroupBy(b => b.SuperBatchId).Sum(g => (long)g.First().Selected + g.First().Filtered) + deadLettered;
        return new RunData
        {
            Policy = run.Policy,
            Independent = run.Independent,
            FilterRatio = run.FilterRatio,
            Steps = plan.Steps,
            BatchSize = plan.BatchSize,
            Eval = summary.Evaluations.Select(e => new EvalRow(e.Step, e.ZeroShotAcc, e.RAt1)).ToList(),
            StepWallMs = [.. summary.StepWallMs],
            SwappedShare = batches.Select(b => (double)b.Swapped / b.Selected).ToList(),
            SelectionMs = RunNames.Uniform == run.Policy ? [] : batches.Select(b => b.SelectionMs).ToList(),
            StallShare = summary.DataStall,
            Time = new TrainerTime(summary.WallSeconds, summary.WaitSeconds, summary.ScoreSeconds + summary.TrainSeconds, summary.EvalSeconds, summary.Step, summary.ScoreSeconds),
            Source = RunSource.Services,
            Produced = produced,
            Trained = batches.Sum(b => (long)b.Selected),
            Filtered = batches.Sum(b => (long)b.Filtered),
            DeadLettered = deadLettered,
        };
    }

    /// <summary>Steps done according to the in-process loop's metrics.json so far (it is rewritten after every evaluation), 0 before the first.</summary>
    public static int InProcessSteps(string metricsPath)
    {
        try
        {
            return File.Exists(metricsPath) ? JsonFiles.Read<InProcessMetrics>(metricsPath).StepWallMs.Count : 0;
        }
        catch (Exception e) when (e is IOException or JsonException)
        {
            // Being replaced right now: the next poll reads it.
            return 0;
        }
    }

    /// <summary>One in-process run's figures from its metrics.json.</summary>
    public static RunData FromInProcess(RunPlan run, DemoPlan plan, string metricsPath)
    {
        ArgumentNullException.ThrowIfNull(run);
        ArgumentNullException.ThrowIfNull(plan);
        var m = JsonFiles.Read<InProcessMetrics>(metricsPath);
        if (m.Eval.Count == 0)
        {
            throw new InvalidDataException($"{metricsPath} holds no evaluations.");
        }

        var n = plan.SuperBatchSize(run.FilterRatio);
        var learnerS = (m.LearnerScoringMs.Sum() + m.TrainMs.Sum()) / 1000;
        return new RunData
        {
            Policy = run.Policy,
            Independent = run.Independent,
            FilterRatio = run.FilterRatio,
            Steps = plan.Steps,
            BatchSize = plan.BatchSize,
            Eval = m.Eval.Select(e => new EvalRow(e.Step, e.ZeroShotAcc, e.RAt1)).ToList(),
            StepWallMs = m.StepWallMs,
            SwappedShare = m.SwappedShare,
            SelectionMs = run.Policy == RunNames.Uniform ? [] : m.SelectionMs,
            // In-process there is no stream to wait on: data is gathered inside the step.
            Time = new TrainerTime(m.WallSeconds, 0, learnerS, Math.Max(0, m.WallSeconds - (m.StepWallMs.Sum() / 1000)), m.StepWallMs.Count),
            Source = RunSource.InProcess,
            // In-process, every super-batch drawn is either trained on or filtered out; nothing can be dead-lettered.
            Produced = (long)plan.Steps * n,
            Trained = (long)plan.Steps * plan.BatchSize,
            Filtered = (long)plan.Steps * (n - plan.BatchSize),
        };
    }

    /// <summary>Per span name: count and duration statistics, pipeline stages first in journey order.</summary>
    internal static List<StageTiming> StageTimings(IReadOnlyList<SpanRecord> spans)
    {
        ArgumentNullException.ThrowIfNull(spans);
        string[] journey = [Telemetry.Spans.IngestPublish, Telemetry.Spans.ScoringProcess, Telemetry.Spans.ScoringEmbed, Telemetry.Spans.ScoringPublish,
            Telemetry.Spans.SelectionSelect, Telemetry.Spans.CurateSend, Telemetry.Spans.TrainerStep];
        // The messaging library's own spans follow OpenTelemetry's messaging convention, "{operation} {destination}".
        return spans.Where(s => s.EndUnixNano > s.StartUnixNano && (journey.Contains(s.Name) || s.Name.StartsWith("publish ", StringComparison.Ordinal) || s.Name.StartsWith("consume ", StringComparison.Ordinal)))
            // Per-job queues ("publish jestmesh.scored.job.demo-jest-f0.8") are one stage.
            .GroupBy(s => PerJobQueue().Replace(s.Name, ".job.*"))
            .OrderBy(g => Array.IndexOf(journey, g.Key) is var i && i >= 0 ? i : journey.Length)
            .ThenBy(g => g.Key, StringComparer.Ordinal)
            .Select(g =>
            {
                var ms = g.Select(s => s.DurationMs).ToList();
                return new StageTiming(g.Key, ms.Count, ms.Average(), Stats.Quantile(ms, 0.5), Stats.Quantile(ms, 0.95), ms.Sum() / 1000);
            })
            .ToList();
    }

    [GeneratedRegex(@"\.job\.[A-Za-z0-9_.-]+$")]
    private static partial Regex PerJobQueue();
}

/// <summary>
/// The fields of the in-process learner loop's metrics.json the demo reads (the file is documented by
/// <c>LearnerMetrics</c> in InProcess/LearnerLoop.cs: snake_case JSON, rewritten after every evaluation).
/// </summary>
internal sealed record InProcessMetrics
{
    public List<EvalPoint> Eval { get; init; } = [];

    public List<double> StepWallMs { get; init; } = [];

    public List<double> LearnerScoringMs { get; init; } = [];

    public List<double> SelectionMs { get; init; } = [];

    public List<double> TrainMs { get; init; } = [];

    public List<double> SwappedShare { get; init; } = [];

    public double WallSeconds { get; init; }
}
