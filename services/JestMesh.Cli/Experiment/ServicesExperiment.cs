using JestMesh.Cli.Demo;
using JestMesh.Models;

namespace JestMesh.Cli.Experiment;

/// <summary>
/// The protocol's runs through the services: one <see cref="LocalPipeline"/> (private broker, Scoring, Selection, as
/// <c>./jestmesh demo</c> starts it) for the whole invocation, and per run an Ingest and a Trainer driven by the demo's
/// <see cref="RunDriver"/> on a job of its own. A run's record is read from public contracts only: the Trainer's
/// run-summary.json (evaluations, per-step wall times, time totals), the batch log and the dead-letter queue.
/// </summary>
internal sealed class ServicesExperiment : IAsyncDisposable
{
    private readonly LocalPipeline _pipeline;
    private readonly DemoPlan _plan;
    private readonly CancellationToken _cancellationToken;

    private ServicesExperiment(LocalPipeline pipeline, DemoPlan plan, CancellationToken cancellationToken)
    {
        _pipeline = pipeline;
        _plan = plan;
        _cancellationToken = cancellationToken;
    }

    /// <summary>Installs what is missing, builds the hosts and starts the pipeline with <paramref name="reference"/> in Scoring.</summary>
    public static async Task<ServicesExperiment> StartAsync(Repo repo, string outDirectory, string reference, DemoPlan plan, Action<string> say, CancellationToken cancellationToken)
    {
        await DemoRunner.SetupAsync(repo, cancellationToken);
        await repo.EnsureBuiltAsync(DemoRunner.Hosts, say, cancellationToken);
        var pipeline = new LocalPipeline(repo, Path.Combine(outDirectory, "pipeline"), null, say);
        try
        {
            await pipeline.StartAsync(reference, cancellationToken);
        }
        catch
        {
            await pipeline.DisposeAsync();
            throw;
        }

        return new ServicesExperiment(pipeline, plan, cancellationToken);
    }

    /// <summary>One run on job <c>exp-sSEED-SLUG</c>, its Trainer's files in <paramref name="directory"/>.</summary>
    public RunRecord Run(RunSpec spec, string directory)
    {
        ArgumentNullException.ThrowIfNull(spec);
        var run = new RunPlan(spec.PolicyName, spec.Independent, spec.FilterRatio, spec.ScoreResolution);
        var plan = _plan with { Seed = spec.Seed, Runs = [run] };
        var prefix = $"exp-s{spec.Seed}-";
        var driver = new RunDriver(_pipeline, plan, directory, prefix);
        var data = driver.RunAsync(run, new LineSink(spec.Name, plan.Steps), new LineSink("pipeline", 0), _cancellationToken).GetAwaiter().GetResult();
        return From(spec, data, prefix + run.Slug);
    }

    /// <summary>The record of a run through the services (per-step learner times are not in the run summary: its totals are kept instead).</summary>
    internal static RunRecord From(RunSpec spec, RunData data, string job)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(data);
        var time = data.Time ?? throw new InvalidDataException($"the run summary of {spec.Name} seed {spec.Seed} has no time totals.");
        var score = time.ScoreS ?? 0;
        return new RunRecord
        {
            ProtocolKey = "",
            Policy = spec.PolicyName,
            Independent = spec.Independent,
            FilterRatio = spec.FilterRatio,
            ScoreResolution = spec.ScoreResolution,
            Seed = spec.Seed,
            Eval = data.Eval.Select(e => new EvalPoint(e.Step, e.ZeroShotAcc, e.RAt1)).ToList(),
            StepWallMs = [.. data.StepWallMs],
            LearnerScoringMs = [],
            TrainMs = [],
            EvalMs = [],
            RankChecks = [],
            MeanSwappedShare = data.SwappedShare.Count == 0 ? double.NaN : data.SwappedShare.Average(),
            WallSeconds = time.WallS,
            // The Trainer runs with libtorch's default intra-op threads.
            Threads = 0,
            LoadStart = double.NaN,
            LoadEnd = double.NaN,
            FinishedUtc = default,
            Services = new ServicesRun(time.WallS, time.WaitS, score, time.LearnerS - score, time.EvalS, time.Steps,
                data.Produced, data.Trained, data.Filtered, data.DeadLettered, job),
        };
    }

    public ValueTask DisposeAsync() => _pipeline.DisposeAsync();
}
