using System.Globalization;
using JestMesh.Data.WebDataset;
using JestMesh.Learning;

namespace JestMesh.Cli.Demo;

/// <summary>Settings of one <c>./jestmesh up</c> invocation.</summary>
internal sealed record UpOptions
{
    /// <summary>The documented default gRPC port of Selection.</summary>
    public const int DefaultPort = 50051;

    /// <summary>The jobs Ingest publishes the built-in pool for (one Ingest each).</summary>
    public required IReadOnlyList<string> Jobs { get; init; }

    /// <summary>Broker data, Scoring's cache and the logs; kept across runs, so sessions resume.</summary>
    public required string State { get; init; }

    /// <summary>A built-in reference checkpoint (reused or trained there), or a reference bundle exported from PyTorch (used as it is).</summary>
    public string? Reference { get; init; }

    /// <summary>A directory of WebDataset shards every job's Ingest publishes instead of the built-in pool (null: the built-in pool).</summary>
    public string? Data { get; init; }

    public int Port { get; init; } = DefaultPort;

    public string? ApiKey { get; init; }

    /// <summary>RabbitMQ nodes (1, or a cluster of 3 for replication).</summary>
    public int Cluster { get; init; } = 1;

    /// <summary>Scoring processes (competing consumers, a cache each).</summary>
    public int ScoringReplicas { get; init; } = 1;

    /// <summary>Selection processes on consecutive ports from <see cref="Port"/> (one holds a job at a time).</summary>
    public int SelectionReplicas { get; init; } = 1;

    /// <summary>
    /// Super-batches Ingest publishes per job (0: until stopped). A job's backlog of scored super-batches
    /// is bounded by Ingest:MaxAhead either way; this caps the run itself.
    /// </summary>
    public int MaxSuperBatches { get; init; }

    /// <summary>Seconds between health lines.</summary>
    public double HealthEvery { get; init; } = 5;
}

/// <summary>
/// <c>./jestmesh up</c>: the <see cref="LocalPipeline"/> (private broker kept under --state, Scoring, Selection on a fixed
/// port) plus one Ingest per job over the built-in Fashion-MNIST pool or the user's WebDataset shards (--data), with the
/// built-in reference or the user's reference bundle (--reference BUNDLE), in the foreground until SIGINT or SIGTERM.
/// Prints one <c>ready address=… api_key=… jobs=…</c> line once Selection serves and every job has its first scored
/// super-batch (its queue exists, observed on the broker), then a plain health line now and then.
/// </summary>
internal sealed class UpRunner(UpOptions options, Repo repo, TextWriter stdout)
{
    public static readonly string[] Hosts = ["JestMesh.Ingest", "JestMesh.Scoring", "JestMesh.Selection"];

    /// <summary>Learner batch and filter ratio the Ingest super-batches are sized for (N = 640 at b = 128, f = 0.8).</summary>
    public const double FilterRatio = 0.8;

    /// <summary>Selection's per-job queue of scored super-batches (the router declares it with the job's first one).</summary>
    public static string JobQueue(string job) => LocalPipeline.Topology.JobQueue(job);

    public async Task<int> RunAsync(CancellationToken cancellationToken)
    {
        if (options.ApiKey is { Length: < 16 })
        {
            throw new ArgumentException("--api-key must be at least 16 characters (Selection refuses shorter keys).");
        }

        if (options.MaxSuperBatches < 0)
        {
            throw new ArgumentException("--max-super-batches must be ≥ 0 (0: no end).");
        }

        if (Enumerable.Range(options.Port, options.SelectionReplicas).FirstOrDefault(p => !Repo.PortFree(p)) is var taken and > 0)
        {
            throw new InvalidOperationException(options.SelectionReplicas == 1
                ? $"--port {options.Port}: 127.0.0.1:{options.Port} is taken; pass a free port with --port."
                : $"--port {options.Port} with --selection-replicas {options.SelectionReplicas}: 127.0.0.1:{taken} is taken; the replicas need {options.Port}-{options.Port + options.SelectionReplicas - 1} free.");
        }

        // The user's shards and bundle are checked before anything is installed, built or started.
        var data = options.Data is null ? null : CheckData(options.Data);
        var bundle = options.Reference is { } given && ReferenceBundle.IsBundle(given) ? CheckBundle(given) : null;
        var state = Path.GetFullPath(options.State);
        Directory.CreateDirectory(state);
        await DemoRunner.SetupAsync(repo, cancellationToken);
        await repo.EnsureBuiltAsync(Hosts, Say, cancellationToken);
        var plan = DemoPlan.Create(quick: false, withF05: false);
        var reference = bundle ?? await DemoRunner.EnsureReferenceAsync(repo, options.Reference, plan, Say, cancellationToken);
        var settings = new PipelineSettings
        {
            KeepBrokerData = true,
            BrokerNodes = options.Cluster,
            ScoringReplicas = options.ScoringReplicas,
            SelectionReplicas = options.SelectionReplicas,
            SelectionPort = options.Port,
            ApiKey = options.ApiKey,
            CacheDirectory = state,
        };
        await using var pipeline = new LocalPipeline(repo, state, otlpForward: null, Say, settings);
        await pipeline.StartAsync(reference, cancellationToken);
        var n = plan.SuperBatchSize(FilterRatio);
        foreach (var job in options.Jobs)
        {
            // Ingest's most epochs (10,000 passes over the pool), or --max-super-batches: it publishes (waiting while the shared
            // super-batch queue is full) until then or until `up` stops, and then stays up without publishing. Only that queue
            // pushes back: a job's scored backlog grows as fast as Scoring works (about 1 MB per super-batch on the broker's disk).
            var ingest = RunDriver.IngestSettings(plan, job, n, maxSuperBatches: options.MaxSuperBatches, epochs: 10_000);
            if (data is not null)
            {
                ingest["Ingest__WebDatasetDirectory"] = data;
            }

            pipeline.Start("JestMesh.Ingest", ingest, logName: "ingest-" + job);
        }

        foreach (var job in options.Jobs)
        {
            await pipeline.WaitUntilAsync($"job {job} has its first scored super-batch", async ct => await pipeline.Probe.DepthAsync(JobQueue(job), ct) is not null,
                cancellationToken, TimeSpan.FromMinutes(15));
        }

        await stdout.WriteLineAsync($"ready address={pipeline.SelectionEndpoints} api_key={pipeline.ApiKey} jobs={string.Join(',', options.Jobs)}");
        await stdout.FlushAsync(cancellationToken);
        try
        {
            while (true)
            {
                await Task.Delay(TimeSpan.FromSeconds(options.HealthEvery), cancellationToken);
                // A service that died takes the stack down with it (exit 1) rather than leave trainers waiting.
                if (pipeline.FirstExited() is { } dead)
                {
                    throw new InvalidOperationException($"{dead.Name} exited (code {dead.ExitCode}); stopping everything. Its log {dead.LogPath} ends:\n{dead.Tail()}");
                }

                await stdout.WriteLineAsync(await HealthLineAsync(pipeline, cancellationToken));
                await stdout.FlushAsync(cancellationToken);
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            Say("stopping: the services, then the broker (its data stays in " + Path.Combine(state, "broker") + ")");
        }

        return 0;
    }

    /// <summary>The shard directory as Ingest will read it (absolute), refused now when it has no shards rather than by every Ingest later.</summary>
    private string CheckData(string directory)
    {
        var source = new WdsSource(directory);
        Say($"data: {source.Shards.Count} WebDataset shards in {source.Root} (samples that cannot be used are skipped and named in logs/ingest-JOB.log)");
        return source.Root;
    }

    /// <summary>Loads the bundle once here, so a bad one stops `up` with its one-line reason before anything starts (Scoring would refuse it too).</summary>
    private string CheckBundle(string directory)
    {
        using var bundle = ReferenceBundle.Load(directory);
        Say($"reference: bundle {bundle.Directory} (SHA-256 {bundle.Sha256[..16]}…, d = {bundle.Dim}, images {bundle.Spec.Channels}x{bundle.Spec.Height}x{bundle.Spec.Width})");
        return bundle.Directory;
    }

    private async Task<string> HealthLineAsync(LocalPipeline pipeline, CancellationToken cancellationToken)
    {
        var parts = new List<string>();
        try
        {
            foreach (var (q, label) in new[] { (LocalPipeline.SuperBatchQueue, "super-batches"), (LocalPipeline.ScoredQueue, "scored"), (LocalPipeline.DeadLetterQueue, "dead") }
                .Concat(options.Jobs.Select(j => (JobQueue(j), "job " + j))))
            {
                parts.Add($"{label} {(await pipeline.Probe.DepthAsync(q, cancellationToken))?.Messages.ToString(CultureInfo.InvariantCulture) ?? "-"}");
            }
        }
        catch (Exception e) when (e is RabbitMQ.Client.Exceptions.AlreadyClosedException or RabbitMQ.Client.Exceptions.BrokerUnreachableException or IOException)
        {
            // The probe's broker node went away (a cluster node lost, the broker restarting): the services
            // recover on their own, and so does the probe's connection; the line says so instead of failing.
            return $"health: broker not reachable from up's probe right now ({e.GetType().Name}); its connection recovers by itself";
        }

        return "health: queue depths " + string.Join(", ", parts);
    }

    private void Say(string message) => stdout.WriteLine($"{DateTime.Now:HH:mm:ss} {message}");
}
