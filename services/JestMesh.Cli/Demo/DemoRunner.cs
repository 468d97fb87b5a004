using System.Diagnostics;
using System.Globalization;
using Spectre.Console;

namespace JestMesh.Cli.Demo;

/// <summary>Settings of one <c>./jestmesh demo</c> invocation.</summary>
internal sealed record DemoOptions
{
    public required DemoPlan Plan { get; init; }

    public required string Out { get; init; }

    public Uri? OtlpEndpoint { get; init; }

    /// <summary>Reference checkpoint directory (reused when its hash and data settings match, else trained there).</summary>
    public string? Reference { get; init; }

    /// <summary>Run the learner loop in-process instead of through the services (labelled as such in the report).</summary>
    public bool InProcess { get; init; }
}

/// <summary>
/// <c>./jestmesh demo</c>: installs what is missing, trains (or reuses) the reference, starts the
/// <see cref="LocalPipeline"/>, runs the learner under every policy (<see cref="RunDriver"/>, or
/// <see cref="InProcessDriver"/> with --inproc), and writes the report (<see cref="ReportWriter"/>).
/// Everything it starts is stopped when it ends, fails or is cancelled (Ctrl-C).
/// </summary>
internal sealed class DemoRunner(DemoOptions options, Repo repo) : IAsyncDisposable
{
    public static readonly string[] Hosts = ["JestMesh.Ingest", "JestMesh.Scoring", "JestMesh.Selection", "JestMesh.Trainer"];

    private readonly DemoPlan _plan = options.Plan;
    private readonly string _out = Path.GetFullPath(options.Out);
    private LocalPipeline? _pipeline;

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            Directory.CreateDirectory(_out);
            await SetupAsync(repo, cancellationToken);
            var inProcess = options.InProcess;
            var missing = Hosts.Where(h => !repo.HasProject(h)).ToList();
            if (!inProcess && missing.Count > 0)
            {
                throw new InvalidOperationException($"this checkout has no {string.Join(", ", missing)}: the service pipeline cannot run. " +
                    "Run `./jestmesh demo --inproc` for the in-process experiment (labelled as such in the report).");
            }

            var reference = await EnsureReferenceAsync(repo, options.Reference, _plan, Say, cancellationToken);
            var runs = new List<RunData>();
            string mode;
            if (inProcess)
            {
                mode = $"In-process learner loop ({(_plan.Quick ? "--quick" : "default")} demo) — not the service pipeline";
                var driver = new InProcessDriver(repo, _plan, _out, reference);
                await LiveProgress.RunAsync(_plan, async (progress, _) =>
                {
                    foreach (var run in _plan.Runs)
                    {
                        runs.Add(await driver.RunAsync(run, progress[run], cancellationToken));
                    }
                });
            }
            else
            {
                await repo.EnsureBuiltAsync(Hosts, Say, cancellationToken);
                _pipeline = new LocalPipeline(repo, _out, options.OtlpEndpoint, Say);
                await _pipeline.StartAsync(reference, cancellationToken);
                mode = $"Service pipeline: Ingest → RabbitMQ → Scoring → RabbitMQ → Selection ⇄ gRPC ⇄ Trainer, local processes on loopback ({(_plan.Quick ? "--quick" : "default")} demo)";
                var driver = new RunDriver(_pipeline, _plan, _out);
                await LiveProgress.RunAsync(_plan, async (progress, health) =>
                {
                    foreach (var run in _plan.Runs)
                    {
                        runs.Add(await driver.RunAsync(run, progress[run], health, cancellationToken));
                    }
                });
            }

            var spans = _pipeline?.Spans ?? [];
            var stageSource = inProcess ? "in-process timings (no traces)" : "OpenTelemetry spans of every service, received over OTLP/HTTP by the demo";
            var results = ResultsBuilder.Build(runs, RunResults.StageTimings(spans), stageSource);
            var settings = _plan.Describe().Append($"reference: {reference} (SHA-256 {ReferenceCheckpoint.Sha256(reference)[..16]}…)")
                .Append($"wall time of the whole demo: {clock.Elapsed.TotalMinutes:0.0} min").ToList();
            ReportWriter.Write(_out, results, runs, new ReportContext(mode, !inProcess, settings) { SpeedUpTarget = _plan.Quick ? 2 : 4 });
            PrintSummary(results);
            return results.Accounting.Balances ? 0 : 3;
        }
        finally
        {
            await DisposeAsync();
        }
    }

    private static void Say(string message) => AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(message)}");

    /// <summary>Installs what the pipeline needs (<c>scripts/setup.sh</c>); shared with <c>./jestmesh up</c>.</summary>
    internal static async Task SetupAsync(Repo repo, CancellationToken cancellationToken)
    {
        var code = await Repo.RunAsync(repo.Script("setup.sh"), [], repo.Root, cancellationToken);
        if (code != 0)
        {
            throw new InvalidOperationException($"scripts/setup.sh could not install what the demo needs (exit {code}); run what it printed above, then run the demo again.");
        }
    }

    /// <summary>The reference checkpoint in <paramref name="reference"/> (default <c>.jestmesh/reference</c>), trained there unless reusable; shared with <c>./jestmesh up</c>.</summary>
    internal static async Task<string> EnsureReferenceAsync(Repo repo, string? reference, DemoPlan plan, Action<string> say, CancellationToken cancellationToken)
    {
        var dir = Path.GetFullPath(reference ?? Path.Combine(repo.Root, ".jestmesh", "reference"));
        var why = ReferenceCheckpoint.WhyNotReusable(dir, plan);
        if (why is null)
        {
            say($"reference: reusing {dir} (SHA-256 and data settings match)");
            return dir;
        }

        say($"reference: training on {plan.CuratedSize} curated pairs ({why})...");
        var code = await Repo.RunAsync(InProcessDriver.SelfHost, [.. InProcessDriver.SelfArguments, "reference", "train", "--out", dir,
            "--data-seed", plan.DataSeed.ToString(CultureInfo.InvariantCulture)], repo.Root, cancellationToken, onLine: _ => { });
        if (code != 0 || ReferenceCheckpoint.WhyNotReusable(dir, plan) is not null)
        {
            throw new InvalidOperationException($"`./jestmesh reference train --out {dir}` failed (exit {code}); run it to see why.");
        }

        return dir;
    }

    private void PrintSummary(DemoResults results)
    {
        var table = new Table().AddColumns("run", "final zero-shot", "steps to match uniform", "speed-up", "compute/step", "wall/step ms", "learner/step ms", "swapped selected");
        foreach (var r in results.Runs)
        {
            var time = results.Stages.TrainerStall.FirstOrDefault(s => s.Run == r.Name);
            table.AddRow(Markup.Escape(r.Name), Fmt.Pct(r.FinalZeroShotAcc), Fmt.Step(r.StepsToMatchUniform), Markup.Escape(Fmt.Times(r.SpeedUp)), Fmt.Rel(r.ComputePerStepRel),
                Fmt.Ms(r.WallPerStepMs), Fmt.Ms(time?.LearnerMsPerStep), Fmt.Pct(r.SwappedShareSelected));
        }

        AnsiConsole.Write(table);
        var a = results.Accounting;
        AnsiConsole.MarkupLine(Markup.Escape($"accounting: produced {a.Produced} = trained {a.Trained} + filtered {a.Filtered} + dead-lettered {a.DeadLettered}: {(a.Balances ? "balances" : "DOES NOT BALANCE")}"));
        AnsiConsole.MarkupLine(Markup.Escape($"report: {Path.Combine(_out, ReportWriter.ReportFile)}"));
    }

    /// <summary>Stops whatever is still running (the run stops everything itself; this covers a runner never run to the end).</summary>
    public async ValueTask DisposeAsync()
    {
        if (_pipeline is { } p)
        {
            _pipeline = null;
            await p.DisposeAsync();
        }
    }
}
