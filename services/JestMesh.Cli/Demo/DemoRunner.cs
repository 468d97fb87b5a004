using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
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
/// <c>./jestmesh demo</c>: installs what is missing, starts a private broker and the services on loopback,
/// trains (or reuses) the reference, runs the learner under every policy through the pipeline, and writes
/// the report. Everything it starts is stopped when it ends, fails or is cancelled (Ctrl-C).
/// </summary>
internal sealed partial class DemoRunner(DemoOptions options, Repo repo) : IAsyncDisposable
{
    public static readonly string[] Hosts = ["JestMesh.Ingest", "JestMesh.Scoring", "JestMesh.Selection", "JestMesh.Trainer"];
    private const string Prefix = "jestmesh";
    private const string LogStream = Prefix + ".selection.log";

    private readonly Stack<IAsyncDisposable> _started = new();
    private readonly DemoPlan _plan = options.Plan;
    private readonly string _out = Path.GetFullPath(options.Out);
    private readonly string _apiKey = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));
    private readonly bool _interactive = AnsiConsole.Profile.Capabilities.Interactive;
    private OtlpReceiver? _otlp;
    private BrokerProbe? _probe;
    private string _amqp = "";
    private int _selectionPort;

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            Directory.CreateDirectory(_out);
            await SetupAsync(cancellationToken);
            var inProcess = options.InProcess;
            var missing = Hosts.Where(h => !repo.HasProject(h)).ToList();
            if (!inProcess && missing.Count > 0)
            {
                throw new InvalidOperationException($"this checkout has no {string.Join(", ", missing)}: the service pipeline cannot run. " +
                    "Run `./jestmesh demo --inproc` for the in-process experiment (labelled as such in the report).");
            }

            var reference = await ReferenceAsync(cancellationToken);
            List<RunData> runs;
            string mode;
            if (inProcess)
            {
                mode = $"In-process learner loop ({(_plan.Quick ? "--quick" : "default")} demo) — not the service pipeline";
                runs = await RunInProcessAsync(reference, cancellationToken);
            }
            else
            {
                await repo.EnsureBuiltAsync(Hosts, Say, cancellationToken);
                await StartPipelineAsync(reference, cancellationToken);
                mode = $"Service pipeline: Ingest → RabbitMQ → Scoring → RabbitMQ → Selection ⇄ gRPC ⇄ Trainer, local processes on loopback ({(_plan.Quick ? "--quick" : "default")} demo)";
                runs = await RunAllAsync(cancellationToken);
            }

            var spans = _otlp?.Spans ?? [];
            var stageSource = inProcess ? "in-process timings (no traces)" : "OpenTelemetry spans of every service, received over OTLP/HTTP by the demo";
            var results = ResultsBuilder.Build(runs, StageTimings(spans), stageSource);
            var settings = _plan.Describe().Append($"reference: {reference} (SHA-256 {ReferenceCheckpoint.Sha256(reference)[..16]}…)")
                .Append($"wall time of the whole demo: {clock.Elapsed.TotalMinutes:0.0} min").ToList();
            ReportWriter.Write(_out, results, runs, new ReportContext(mode, !inProcess, settings) { SpeedUpTarget = _plan.Quick ? 2 : 4 });
            PrintSummary(results);
            return results.Accounting.Balances ? 0 : 3;
        }
        finally
        {
            await StopAllAsync();
        }
    }

    private void Say(string message) => AnsiConsole.MarkupLine($"[grey]{DateTime.Now:HH:mm:ss}[/] {Markup.Escape(message)}");

    private async Task SetupAsync(CancellationToken cancellationToken)
    {
        var code = await Repo.RunAsync(repo.Script("setup.sh"), [], repo.Root, cancellationToken);
        if (code != 0)
        {
            throw new InvalidOperationException($"scripts/setup.sh could not install what the demo needs (exit {code}); run what it printed above, then run the demo again.");
        }
    }

    private async Task<string> ReferenceAsync(CancellationToken cancellationToken)
    {
        var dir = Path.GetFullPath(options.Reference ?? Path.Combine(repo.Root, ".jestmesh", "reference"));
        var why = ReferenceCheckpoint.WhyNotReusable(dir, _plan);
        if (why is null)
        {
            Say($"reference: reusing {dir} (SHA-256 and data settings match)");
            return dir;
        }

        Say($"reference: training on {_plan.CuratedSize} curated pairs ({why})...");
        var code = await Repo.RunAsync(SelfHost, [.. SelfArguments, "reference", "train", "--out", dir,
            "--data-seed", _plan.DataSeed.ToString(CultureInfo.InvariantCulture)], repo.Root, cancellationToken, onLine: _ => { });
        if (code != 0 || ReferenceCheckpoint.WhyNotReusable(dir, _plan) is { } still)
        {
            throw new InvalidOperationException($"`./jestmesh reference train --out {dir}` failed (exit {code}); run it to see why.");
        }

        return dir;
    }

    // The CLI runs as `dotnet jestmesh.dll`: start sub-commands the same way.
    private static string SelfHost => Environment.ProcessPath ?? "dotnet";

    private static string[] SelfArguments =>
        Path.GetFileNameWithoutExtension(Environment.ProcessPath ?? "") == "dotnet" ? [typeof(DemoRunner).Assembly.Location] : [];

    private async Task StartPipelineAsync(string reference, CancellationToken cancellationToken)
    {
        // Broker: private, on loopback, its own data directory and ports.
        var brokerDir = Path.Combine(_out, "broker");
        var amqpPort = Repo.FreePort();
        var brokerEnv = new Dictionary<string, string>
        {
            ["JESTMESH_AMQP_PORT"] = amqpPort.ToString(CultureInfo.InvariantCulture),
            ["JESTMESH_DIST_PORT"] = Repo.FreePort().ToString(CultureInfo.InvariantCulture),
        };
        Say($"broker: starting RabbitMQ on 127.0.0.1:{amqpPort} ({brokerDir})");
        var uri = "";
        _started.Push(new Cleanup(async () =>
        {
            await Repo.RunAsync(repo.Script("broker.sh"), ["stop", brokerDir], repo.Root, CancellationToken.None, brokerEnv);
            Directory.Delete(brokerDir, recursive: true);
        }));
        var code = await Repo.RunAsync(repo.Script("broker.sh"), ["start", brokerDir], repo.Root, cancellationToken, brokerEnv, line => uri = line.Trim());
        if (code != 0 || !uri.StartsWith("amqp://", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"scripts/broker.sh start {brokerDir} failed (exit {code}); see {brokerDir}/log.");
        }

        _amqp = uri;
        _probe = await BrokerProbe.ConnectAsync(uri, cancellationToken);
        _started.Push(_probe);
        _otlp = new OtlpReceiver(Repo.FreePort(), options.OtlpEndpoint);
        _started.Push(_otlp);
        if (options.OtlpEndpoint is not null)
        {
            Say($"traces: received on {_otlp.Endpoint} and forwarded to {options.OtlpEndpoint} (OTLP/HTTP)");
        }

        var cache = Path.Combine(repo.Root, ".jestmesh", "cache", $"scoring-{ReferenceCheckpoint.Sha256(reference)[..16]}.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
        Start("JestMesh.Scoring", new()
        {
            ["Scoring__ReferenceDirectory"] = reference,
            ["Scoring__Device"] = "cpu",
            ["Scoring__CachePath"] = cache,
            // One super-batch at a time keeps Ingest's order (two at once may publish them swapped).
            ["Messaging__ConsumerConcurrency"] = "1",
        });
        _selectionPort = Repo.FreePort();
        // One router delivery at a time keeps each job's super-batches in Ingest's order, so a run with
        // a fixed seed is reproducible (the service's default of 4 may reorder them for throughput).
        Start("JestMesh.Selection", new() { ["Selection__ApiKey"] = _apiKey, ["Selection__LogStream"] = LogStream, ["Messaging__ConsumerConcurrency"] = "1" }, _selectionPort);
        await WaitUntilAsync("Scoring consumes super-batches", async ct => await _probe.DepthAsync(Prefix + ".superbatches", ct) is { Consumers: > 0 }, cancellationToken);
        await WaitUntilAsync("Selection serves gRPC and has its batch log", async ct =>
            await Repo.PortOpenAsync(_selectionPort, ct) && await _probe.DepthAsync(LogStream, ct) is not null, cancellationToken);
        Say($"pipeline: Scoring and Selection ready (Selection on 127.0.0.1:{_selectionPort})");
    }

    private ChildProcess Start(string host, Dictionary<string, string> settings, int? port = null, string? logName = null)
    {
        var env = new Dictionary<string, string>(settings)
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port ?? Repo.FreePort()}",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["Messaging__Uri"] = _amqp,
            ["Messaging__QueuePrefix"] = Prefix,
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = _otlp!.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "1000",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "2000",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
        var dll = repo.HostDll(host);
        var child = ChildProcess.Start(host, "dotnet", [dll], Path.GetDirectoryName(dll)!, env, Path.Combine(_out, "logs", (logName ?? host) + ".log"));
        _started.Push(child);
        return child;
    }

    private async Task WaitUntilAsync(string what, Func<CancellationToken, Task<bool>> condition, CancellationToken cancellationToken, TimeSpan? deadline = null)
    {
        var until = Stopwatch.StartNew();
        var limit = deadline ?? TimeSpan.FromMinutes(2);
        while (!await condition(cancellationToken))
        {
            foreach (var p in _started.OfType<ChildProcess>())
            {
                if (p.HasExited)
                {
                    throw new InvalidOperationException($"{p.Name} exited (code {p.ExitCode}) while waiting until {what}; its log {p.LogPath} ends:\n{p.Tail()}");
                }
            }

            if (until.Elapsed > limit)
            {
                throw new TimeoutException($"gave up waiting {limit.TotalSeconds:0} s until {what}.");
            }

            await Task.Delay(200, cancellationToken);
        }
    }

    private async Task<List<RunData>> RunAllAsync(CancellationToken cancellationToken)
    {
        var results = new List<RunData>();
        await Live(async (progress, health) =>
        {
            foreach (var run in _plan.Runs)
            {
                results.Add(await RunOneAsync(run, progress[run], health, cancellationToken));
            }
        });
        return results;
    }

    /// <summary>Progress bars (one per run) and the pipeline-health line; plain lines when the console is not interactive.</summary>
    private async Task Live(Func<IReadOnlyDictionary<RunPlan, IProgressSink>, IProgressSink, Task> body)
    {
        if (!_interactive)
        {
            var sinks = _plan.Runs.ToDictionary(r => r, r => (IProgressSink)new LineSink(r.Name, _plan.Steps));
            await body(sinks, new LineSink("pipeline", 0));
            return;
        }

        await AnsiConsole.Progress()
            .AutoClear(false)
            .HideCompleted(false)
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .StartAsync(async ctx =>
            {
                var sinks = _plan.Runs.ToDictionary(r => r, r => (IProgressSink)new TaskSink(ctx.AddTask(Markup.Escape(r.Name), autoStart: false, maxValue: _plan.Steps), r.Name));
                var health = ctx.AddTask("pipeline", autoStart: true, maxValue: 1);
                health.IsIndeterminate = true;
                await body(sinks, new TaskSink(health, "pipeline"));
                health.Value = 1;
                health.StopTask();
            });
    }

    private async Task<RunData> RunOneAsync(RunPlan run, IProgressSink progress, IProgressSink health, CancellationToken cancellationToken)
    {
        var job = "demo-" + run.Slug;
        var runDir = Path.Combine(_out, "runs", run.Slug);
        if (Directory.Exists(runDir))
        {
            Directory.Delete(runDir, recursive: true);
        }

        Directory.CreateDirectory(runDir);
        var n = _plan.SuperBatchSize(run.FilterRatio);
        var started = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1_000_000;
        await using var log = await _probe!.FollowLogAsync(LogStream, cancellationToken);
        progress.Start();
        var ingest = Start("JestMesh.Ingest", new()
        {
            ["Ingest__Job"] = job,
            ["Ingest__SuperBatchSize"] = n.ToString(CultureInfo.InvariantCulture),
            ["Ingest__MaxSuperBatches"] = _plan.Steps.ToString(CultureInfo.InvariantCulture),
            ["Ingest__Epochs"] = (((long)_plan.Steps * n / 50_000) + 2).ToString(CultureInfo.InvariantCulture),
            ["Ingest__DataSeed"] = _plan.DataSeed.ToString(CultureInfo.InvariantCulture),
            // The learner's seed also orders the stream, as in `train --inproc --seed`.
            ["Ingest__OrderSeed"] = _plan.Seed.ToString(CultureInfo.InvariantCulture),
            ["Ingest__SwappedShare"] = _plan.SwappedShare.ToString(CultureInfo.InvariantCulture),
            ["Ingest__CuratedSize"] = _plan.CuratedSize.ToString(CultureInfo.InvariantCulture),
        }, logName: "ingest-" + run.Slug);
        long? produced = null;
        ingest.OnOutput(line =>
        {
            if (IngestDone().Match(line) is { Success: true } m && m.Groups["job"].Value == job)
            {
                produced = long.Parse(m.Groups["examples"].Value, CultureInfo.InvariantCulture);
            }
        });
        var trainer = Start("JestMesh.Trainer", new()
        {
            ["Trainer__SelectionAddress"] = $"http://127.0.0.1:{_selectionPort}",
            ["Trainer__ApiKey"] = _apiKey,
            ["Trainer__Job"] = job,
            ["Trainer__Policy"] = run.TrainerPolicy,
            ["Trainer__FilterRatio"] = run.FilterRatio.ToString(CultureInfo.InvariantCulture),
            ["Trainer__Chunks"] = (run.Independent ? 1 : _plan.Chunks).ToString(CultureInfo.InvariantCulture),
            ["Trainer__Gain"] = _plan.Gain.ToString(CultureInfo.InvariantCulture),
            ["Trainer__Seed"] = _plan.Seed.ToString(CultureInfo.InvariantCulture),
            ["Trainer__Steps"] = _plan.Steps.ToString(CultureInfo.InvariantCulture),
            ["Trainer__WarmupSteps"] = _plan.WarmupSteps.ToString(CultureInfo.InvariantCulture),
            ["Trainer__EvalEvery"] = _plan.EvalEvery.ToString(CultureInfo.InvariantCulture),
            ["Trainer__EvalLimit"] = _plan.EvalLimit.ToString(CultureInfo.InvariantCulture),
            ["Trainer__DataSeed"] = _plan.DataSeed.ToString(CultureInfo.InvariantCulture),
            // Checkpoint where it evaluates anyway: the wall time per step leaves those steps out.
            ["Trainer__CheckpointEvery"] = _plan.EvalEvery.ToString(CultureInfo.InvariantCulture),
            ["Trainer__CheckpointDirectory"] = Path.Combine(runDir, "trainer"),
        }, logName: "trainer-" + run.Slug);
        double? stall = null;
        string lastEval = "";
        trainer.OnOutput(line =>
        {
            if (TrainerEval().Match(line) is { Success: true } e)
            {
                lastEval = $"step {e.Groups["step"].Value}: zero-shot {e.Groups["acc"].Value}";
            }
            else if (TrainerStall().Match(line) is { Success: true } s)
            {
                stall = double.Parse(s.Groups["stall"].Value, CultureInfo.InvariantCulture) / 100;
            }
        });

        var exit = trainer.WaitForExitAsync(cancellationToken);
        while (!exit.IsCompleted)
        {
            await Task.WhenAny(exit, Task.Delay(1000, cancellationToken));
            if (ingest.HasExited)
            {
                throw new InvalidOperationException($"Ingest for {run.Name} exited (code {ingest.ExitCode}); its log {ingest.LogPath} ends:\n{ingest.Tail()}");
            }

            var steps = _otlp!.Spans.Count(s => s.Name == "trainer.step" && s.StartUnixNano >= started);
            progress.Report(steps, $"{run.Name}  {lastEval}");
            health.Report(0, await HealthLineAsync(log, job, started, cancellationToken));
        }

        await exit;
        if (trainer.ExitCode != 0)
        {
            throw new InvalidOperationException($"the Trainer for {run.Name} failed (exit {trainer.ExitCode}); its log {trainer.LogPath} ends:\n{trainer.Tail()}");
        }

        var batches = await log.WaitForAsync(job, _plan.Steps, TimeSpan.FromSeconds(60), cancellationToken);
        await WaitUntilAsync($"Ingest reports what it published for {job}", _ => Task.FromResult(produced is not null), cancellationToken, TimeSpan.FromSeconds(30));
        await DisposeStartedAsync(ingest);
        await DisposeStartedAsync(trainer);
        var dead = (await _probe.DrainDeadLettersAsync(Prefix + ".dead", cancellationToken)).GetValueOrDefault(job);
        var evals = TrainerEvals(Path.Combine(runDir, "trainer"));
        var stepSpans = _otlp!.Spans.Where(s => s.Name == "trainer.step" && s.StartUnixNano >= started).OrderBy(s => s.StartUnixNano).ToList();
        var wall = StepWallTimes(stepSpans, _plan.EvalEvery);
        if (batches.Any(b => !b.DistinctIds))
        {
            throw new InvalidDataException($"job {job}: a curated batch repeats an example id among its selected and filtered ids.");
        }

        progress.Report(_plan.Steps, $"{run.Name}  final zero-shot {evals[^1].ZeroShotAcc:P1}");
        progress.Stop();
        return new RunData
        {
            Policy = run.Policy,
            Independent = run.Independent,
            FilterRatio = run.FilterRatio,
            Steps = _plan.Steps,
            BatchSize = _plan.BatchSize,
            Eval = evals,
            StepWallMs = wall,
            SwappedShare = batches.Select(b => (double)b.Swapped / b.Selected).ToList(),
            SelectionMs = RunNames.Uniform == run.Policy ? [] : batches.Select(b => b.SelectionMs).ToList(),
            StallShare = stall,
            Source = RunSource.Services,
            Produced = produced ?? 0,
            Trained = batches.Sum(b => (long)b.Selected),
            Filtered = batches.Sum(b => (long)b.Filtered),
            DeadLettered = dead,
        };
    }

    private async Task<string> HealthLineAsync(BatchLogReader log, string job, long since, CancellationToken cancellationToken)
    {
        var depth = new List<string>();
        foreach (var (q, label) in new[] { (Prefix + ".superbatches", "super-batches"), (Prefix + ".scored", "scored"), (Prefix + ".dead", "dead") })
        {
            depth.Add($"{label} {(await _probe!.DepthAsync(q, cancellationToken))?.Messages.ToString(CultureInfo.InvariantCulture) ?? "–"}");
        }

        var recent = log.Batches(job).TakeLast(50).ToList();
        var latency = recent.Count == 0 ? "–" : $"{Stats.Quantile(recent.Select(b => b.SelectionMs).ToList(), 0.5):0.0} ms";
        var firstStep = _otlp!.Spans.Where(s => s.Name == "trainer.step" && s.StartUnixNano >= since).Select(s => s.StartUnixNano).DefaultIfEmpty(0).Min();
        var stallMs = _otlp.HistogramSum("JestMesh.Trainer", "jestmesh.trainer.data_stall");
        var elapsedMs = firstStep == 0 ? 0 : (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1e6 - firstStep) / 1e6;
        var stall = stallMs is { } s && elapsedMs > 0 ? $"{Math.Min(1, s / elapsedMs):P1}" : "–";
        return $"queues: {string.Join(", ", depth)} | selection p50 {latency} | trainer stall {stall}";
    }

    private static List<EvalRow> TrainerEvals(string checkpointDirectory)
    {
        var pointer = Path.Combine(checkpointDirectory, "LATEST");
        if (!File.Exists(pointer))
        {
            throw new InvalidDataException($"the Trainer left no checkpoint in {checkpointDirectory} (no LATEST).");
        }

        var state = Path.Combine(checkpointDirectory, File.ReadAllText(pointer).Trim(), "state.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(state));
        var evals = doc.RootElement.GetProperty("Evals").EnumerateArray()
            .Select(e => new EvalRow(e.GetProperty("step").GetInt32(), e.GetProperty("zero_shot_acc").GetDouble(), e.GetProperty("r_at_1").GetDouble()))
            .ToList();
        return evals.Count > 0 ? evals : throw new InvalidDataException($"{state} holds no evaluations.");
    }

    private async Task<List<RunData>> RunInProcessAsync(string reference, CancellationToken cancellationToken)
    {
        var results = new List<RunData>();
        await Live(async (progress, _) =>
        {
            foreach (var run in _plan.Runs)
            {
                var dir = Path.Combine(_out, "runs", run.Slug);
                var sink = progress[run];
                sink.Start();
                string[] args = [.. SelfArguments, "train", "--inproc", "--policy", run.Policy, "--filter-ratio", run.FilterRatio.ToString(CultureInfo.InvariantCulture),
                    "--chunks", (run.Independent ? 1 : _plan.Chunks).ToString(CultureInfo.InvariantCulture), "--batch-size", _plan.BatchSize.ToString(CultureInfo.InvariantCulture),
                    "--steps", _plan.Steps.ToString(CultureInfo.InvariantCulture), "--seed", _plan.Seed.ToString(CultureInfo.InvariantCulture),
                    "--gain", _plan.Gain.ToString(CultureInfo.InvariantCulture), "--eval-every", _plan.EvalEvery.ToString(CultureInfo.InvariantCulture),
                    "--reference", reference, "--out", dir];
                if (run.Independent)
                {
                    args = [.. args, "--independent"];
                }

                var code = await Repo.RunAsync(SelfHost, args, repo.Root, cancellationToken, onLine: line =>
                {
                    if (InProcessProgress().Match(line) is { Success: true } m)
                    {
                        sink.Report(int.Parse(m.Groups["step"].Value, CultureInfo.InvariantCulture), run.Name);
                    }
                });
                if (code != 0)
                {
                    throw new InvalidOperationException($"`./jestmesh {string.Join(' ', args.Skip(SelfArguments.Length))}` failed (exit {code}).");
                }

                sink.Stop();
                results.Add(InProcessRun(run, Path.Combine(dir, "metrics.json")));
            }
        });
        return results;
    }

    private RunData InProcessRun(RunPlan run, string metricsPath)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(metricsPath));
        var root = doc.RootElement;
        List<double> Doubles(string name) => root.TryGetProperty(name, out var v) ? v.EnumerateArray().Select(x => x.GetDouble()).ToList() : [];
        var evals = root.GetProperty("eval").EnumerateArray()
            .Select(e => new EvalRow(e.GetProperty("step").GetInt32(), e.GetProperty("zero_shot_acc").GetDouble(), e.GetProperty("r_at_1").GetDouble())).ToList();
        var n = _plan.SuperBatchSize(run.FilterRatio);
        return new RunData
        {
            Policy = run.Policy,
            Independent = run.Independent,
            FilterRatio = run.FilterRatio,
            Steps = _plan.Steps,
            BatchSize = _plan.BatchSize,
            Eval = evals,
            StepWallMs = Doubles("step_wall_ms"),
            SwappedShare = Doubles("swapped_share"),
            SelectionMs = run.Policy == RunNames.Uniform ? [] : Doubles("selection_ms"),
            Source = RunSource.InProcess,
            // In-process, every super-batch drawn is either trained on or filtered out; nothing can be dead-lettered.
            Produced = (long)_plan.Steps * n,
            Trained = (long)_plan.Steps * _plan.BatchSize,
            Filtered = (long)_plan.Steps * (n - _plan.BatchSize),
        };
    }

    /// <summary>
    /// Wall time of each learner step: from one trainer.step span's start to the next one's, so waiting for data and
    /// scoring the next candidate count; the intervals after an evaluation step (which also checkpoints) are left out,
    /// as the in-process loop leaves evaluation out of its step times.
    /// </summary>
    internal static List<double> StepWallTimes(IReadOnlyList<SpanRecord> stepSpans, int evalEvery)
    {
        var ordered = stepSpans.OrderBy(s => s.StartUnixNano).ToList();
        var wall = new List<double>();
        for (var i = 0; i + 1 < ordered.Count; i++)
        {
            var step = ordered[i].Attributes.TryGetValue("jestmesh.sequence", out var v) && long.TryParse(v, CultureInfo.InvariantCulture, out var seq) ? seq : -1;
            if (step > 0 && step % evalEvery == 0)
            {
                continue;
            }

            wall.Add((ordered[i + 1].StartUnixNano - ordered[i].StartUnixNano) / 1e6);
        }

        return wall;
    }

    /// <summary>Per span name: count and duration statistics, pipeline stages first in journey order.</summary>
    internal static List<StageTiming> StageTimings(IReadOnlyList<SpanRecord> spans)
    {
        string[] journey = ["ingest.publish", "scoring.process", "scoring.embed", "scoring.publish", "selection.select", "curate.send", "trainer.step"];
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

    private void PrintSummary(DemoResults results)
    {
        var table = new Table().AddColumns("run", "final zero-shot", "steps to match uniform", "speed-up", "compute/step", "wall/step ms", "swapped selected");
        foreach (var r in results.Runs)
        {
            table.AddRow(Markup.Escape(r.Name), Fmt.Pct(r.FinalZeroShotAcc), Fmt.Step(r.StepsToMatchUniform), Markup.Escape(Fmt.Times(r.SpeedUp)), Fmt.Rel(r.ComputePerStepRel), Fmt.Ms(r.WallPerStepMs), Fmt.Pct(r.SwappedShareSelected));
        }

        AnsiConsole.Write(table);
        var a = results.Accounting;
        AnsiConsole.MarkupLine(Markup.Escape($"accounting: produced {a.Produced} = trained {a.Trained} + filtered {a.Filtered} + dead-lettered {a.DeadLettered}: {(a.Balances ? "balances" : "DOES NOT BALANCE")}"));
        AnsiConsole.MarkupLine(Markup.Escape($"report: {Path.Combine(_out, ReportWriter.ReportFile)}"));
    }

    private async Task DisposeStartedAsync(ChildProcess item)
    {
        await item.DisposeAsync();
        var keep = _started.Where(s => !ReferenceEquals(s, item)).Reverse().ToList();
        _started.Clear();
        foreach (var k in keep)
        {
            _started.Push(k);
        }
    }

    /// <summary>Stops whatever is still running (the run stops everything itself; this covers a runner never run to the end).</summary>
    public async ValueTask DisposeAsync() => await StopAllAsync();

    private async Task StopAllAsync()
    {
        // Service processes first, all at once (each gets SIGTERM and a grace period), then the rest in reverse order.
        var children = _started.OfType<ChildProcess>().ToList();
        var rest = _started.Where(s => s is not ChildProcess).ToList();
        _started.Clear();
        await Task.WhenAll(children.Select(async c => await Quietly(c)));
        foreach (var item in rest)
        {
            await Quietly(item);
        }
    }

    private static async Task Quietly(IAsyncDisposable item)
    {
        try
        {
            await item.DisposeAsync();
        }
        catch (Exception e) when (e is IOException or InvalidOperationException or UnauthorizedAccessException or RabbitMQ.Client.Exceptions.AlreadyClosedException or OperationCanceledException)
        {
            Console.Error.WriteLine($"demo: while stopping: {e.Message}");
        }
    }

    [GeneratedRegex(@"\.job\.[A-Za-z0-9_.-]+$")]
    private static partial Regex PerJobQueue();

    [GeneratedRegex(@"Job (?<job>\S+): published (?<batches>\d+) super-batches \((?<examples>\d+) examples\)")]
    private static partial Regex IngestDone();

    [GeneratedRegex(@"Step (?<step>\d+): zero-shot (?<acc>[0-9.]+ ?%)")]
    private static partial Regex TrainerEval();

    [GeneratedRegex(@"data stall (?<stall>[0-9.]+)%")]
    private static partial Regex TrainerStall();

    [GeneratedRegex(@": (?<step>\d+)/\d+")]
    private static partial Regex InProcessProgress();

    private sealed class Cleanup(Func<Task> action) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await action();
    }
}

/// <summary>Where a run's progress goes: a Spectre progress task, or plain lines.</summary>
internal interface IProgressSink
{
    void Start();

    void Report(int value, string description);

    void Stop();
}

internal sealed class TaskSink(ProgressTask task, string name) : IProgressSink
{
    public void Start() => task.StartTask();

    public void Report(int value, string description)
    {
        task.Value = value;
        task.Description = Markup.Escape(description.Length == 0 ? name : description);
    }

    public void Stop() => task.StopTask();
}

internal sealed class LineSink(string name, int max) : IProgressSink
{
    private long _lastPrint;

    public void Start() => Console.WriteLine($"{DateTime.Now:HH:mm:ss} {name}: started");

    public void Report(int value, string description)
    {
        // Every 10 s at most: CI logs stay readable.
        var now = Environment.TickCount64;
        if (now - _lastPrint >= 10_000)
        {
            _lastPrint = now;
            Console.WriteLine(max > 0 ? $"{DateTime.Now:HH:mm:ss} {description} {value}/{max}" : $"{DateTime.Now:HH:mm:ss} {name}: {description}");
        }
    }

    public void Stop() => Console.WriteLine($"{DateTime.Now:HH:mm:ss} {name}: done");
}
