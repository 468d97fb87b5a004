using System.Diagnostics;
using System.Globalization;
using JestMesh.Messaging;

namespace JestMesh.Cli.Demo;

/// <summary>
/// The demo's local pipeline: a private RabbitMQ broker on loopback, the OTLP receiver the services send their
/// traces to, the broker probe, and the long-lived Scoring and Selection processes. Runs add their own Ingest and
/// Trainer processes through <see cref="Start"/>. Disposing stops everything it started, services first.
/// <c>./jestmesh demo</c> and <c>./jestmesh up</c> both run on it; <see cref="PipelineSettings"/> holds what differs.
/// </summary>
internal sealed class LocalPipeline(Repo repo, string outDirectory, Uri? otlpForward, Action<string> say, PipelineSettings? settings = null) : IAsyncDisposable
{
    private readonly PipelineSettings _settings = settings ?? new PipelineSettings();

    public const string Prefix = "jestmesh";

    /// <summary>The services' queue names (the default Messaging:QueuePrefix).</summary>
    public static readonly QueueTopology Topology = new(Prefix);
    public static readonly string SuperBatchQueue = Topology.SuperBatches;
    public static readonly string ScoredQueue = Topology.Scored;
    public static readonly string DeadLetterQueue = Topology.DeadLetter;
    public const string LogStream = Prefix + ".selection.log";

    private readonly Stack<IAsyncDisposable> _started = new();
    private OtlpReceiver? _otlp;
    private BrokerProbe? _probe;
    private string _amqp = "";

    /// <summary>The credential the Selection service demands of every RPC (fresh per demo).</summary>
    public string ApiKey => _settings.ApiKey ?? _generatedKey;

    private readonly string _generatedKey = Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(16));

    /// <summary>The first Selection replica's gRPC port.</summary>
    public int SelectionPort => SelectionPorts[0];

    /// <summary>Every Selection replica's gRPC port on 127.0.0.1, replica 0 first.</summary>
    public IReadOnlyList<int> SelectionPorts { get; private set; } = [];

    /// <summary>Every Selection replica as host:port, comma-separated (what <c>up</c> prints).</summary>
    public string SelectionEndpoints => string.Join(',', SelectionPorts.Select(p => $"127.0.0.1:{p}"));

    /// <summary>Every Selection replica as http:// addresses, comma-separated: the form Trainer:SelectionAddress (JestMesh.Client) takes.</summary>
    public string SelectionAddresses => string.Join(',', SelectionPorts.Select(p => $"http://127.0.0.1:{p}"));

    private readonly List<ChildProcess> _scorings = [];
    private readonly List<ChildProcess> _selections = [];
    private string _brokerDir = "";
    private Dictionary<string, string> _brokerEnv = [];
    private int _amqpPort;

    public OtlpReceiver Otlp => _otlp ?? throw new InvalidOperationException("the pipeline is not started.");

    public BrokerProbe Probe => _probe ?? throw new InvalidOperationException("the pipeline is not started.");

    /// <summary>The spans received so far (none before the pipeline starts).</summary>
    public IReadOnlyList<SpanRecord> Spans => _otlp?.Spans ?? [];

    /// <summary>Starts the broker, the OTLP receiver, Scoring and Selection, and waits until both serve.</summary>
    public async Task StartAsync(string reference, CancellationToken cancellationToken)
    {
        // Broker: private, on loopback, its own data directory and ports; with BrokerNodes > 1 a
        // cluster whose nodes take consecutive AMQP ports (scripts/broker.sh JESTMESH_BROKER_NODES).
        var brokerDir = Path.Combine(outDirectory, "broker");
        var nodes = _settings.BrokerNodes;
        var amqpPort = _settings.KeepBrokerData ? KeptAmqpPort(brokerDir, nodes) : FreeConsecutivePorts(nodes);
        var brokerEnv = new Dictionary<string, string>
        {
            ["JESTMESH_AMQP_PORT"] = amqpPort.ToString(CultureInfo.InvariantCulture),
            ["JESTMESH_BROKER_NODES"] = nodes.ToString(CultureInfo.InvariantCulture),
        };
        if (nodes == 1)
        {
            brokerEnv["JESTMESH_DIST_PORT"] = Repo.FreePort().ToString(CultureInfo.InvariantCulture);
            say($"broker: starting RabbitMQ on 127.0.0.1:{amqpPort} ({brokerDir})");
        }
        else
        {
            say($"broker: starting a {nodes}-node RabbitMQ cluster on 127.0.0.1:{amqpPort}-{amqpPort + nodes - 1} ({brokerDir}); every service is given every node");
        }
        _brokerDir = brokerDir;
        _brokerEnv = brokerEnv;
        _amqpPort = amqpPort;
        var uri = "";
        _started.Push(new Cleanup(async () =>
        {
            await Repo.RunAsync(repo.Script("broker.sh"), ["stop", brokerDir], repo.Root, CancellationToken.None, brokerEnv);
            if (!_settings.KeepBrokerData)
            {
                Directory.Delete(brokerDir, recursive: true);
            }
        }));
        var code = await Repo.RunAsync(repo.Script("broker.sh"), ["start", brokerDir], repo.Root, cancellationToken, brokerEnv, line => uri = line.Trim());
        if (code != 0 || !uri.StartsWith("amqp://", StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"scripts/broker.sh start {brokerDir} failed (exit {code}); see {brokerDir}/log.");
        }

        _amqp = uri;
        _probe = await BrokerProbe.ConnectAsync(uri, cancellationToken);
        _started.Push(_probe);
        _otlp = new OtlpReceiver(Repo.FreePort(), otlpForward);
        _started.Push(_otlp);
        if (otlpForward is not null)
        {
            say($"traces: received on {_otlp.Endpoint} and forwarded to {otlpForward} (OTLP/HTTP)");
        }

        var cache = Path.Combine(_settings.CacheDirectory ?? Path.Combine(repo.Root, ".jestmesh", "cache"), $"scoring-{ReferenceCheckpoint.Sha256(reference)[..16]}.bin");
        Directory.CreateDirectory(Path.GetDirectoryName(cache)!);
        for (var replica = 0; replica < _settings.ScoringReplicas; replica++)
        {
            // The cache is per replica (a file each; the first keeps the single-replica name, so it stays warm).
            _scorings.Add(Start("JestMesh.Scoring", new()
            {
                ["Scoring__ReferenceDirectory"] = reference,
                ["Scoring__Device"] = "cpu",
                ["Scoring__CachePath"] = replica == 0 ? cache : Path.ChangeExtension(cache, $"{replica}.bin"),
                // One super-batch at a time keeps Ingest's order (two at once may publish them swapped;
                // with several replicas the order is the broker's anyway).
                ["Messaging__ConsumerConcurrency"] = "1",
            }, logName: replica == 0 ? null : $"JestMesh.Scoring-{replica}"));
        }
        // Selection replicas on consecutive ports from the fixed one, or free ports.
        SelectionPorts = _settings.SelectionPort is { } fixedPort
            ? [.. Enumerable.Range(fixedPort, _settings.SelectionReplicas)]
            : [.. Enumerable.Range(0, _settings.SelectionReplicas).Select(_ => Repo.FreePort())];
        for (var replica = 0; replica < SelectionPorts.Count; replica++)
        {
            // One router delivery at a time keeps each job's super-batches in Ingest's order, so a run with
            // a fixed seed is reproducible (the service's default of 4 may reorder them for throughput).
            _selections.Add(Start("JestMesh.Selection", new() { ["Selection__ApiKey"] = ApiKey, ["Selection__LogStream"] = LogStream, ["Messaging__ConsumerConcurrency"] = "1" },
                SelectionPorts[replica], logName: replica == 0 ? null : $"JestMesh.Selection-{replica}"));
        }

        await WaitUntilAsync("Scoring consumes super-batches", async ct => await _probe.DepthAsync(SuperBatchQueue, ct) is { } q && q.Consumers >= _settings.ScoringReplicas, cancellationToken);
        await WaitUntilAsync("Selection serves gRPC and has its batch log", async ct =>
            (await Task.WhenAll(SelectionPorts.Select(p => Repo.PortOpenAsync(p, ct)))).All(open => open) && await _probe.DepthAsync(LogStream, ct) is not null, cancellationToken);
        say($"pipeline: Scoring and Selection ready (Selection on {SelectionEndpoints})");
    }

    /// <summary>The Scoring processes, by replica (a restarted one replaces the one it restarts).</summary>
    public IReadOnlyList<ChildProcess> Scorings => _scorings;

    /// <summary>The Selection processes, by replica (a restarted one replaces the one it restarts).</summary>
    public IReadOnlyList<ChildProcess> Selections => _selections;

    /// <summary>AMQP ports of the broker's nodes (one, or every node of the cluster).</summary>
    public IReadOnlyList<int> BrokerNodePorts => [.. Enumerable.Range(_amqpPort, _settings.BrokerNodes)];

    /// <summary>
    /// SIGKILLs <paramref name="victim"/> (a process started here), waits until it is gone, and starts it again the same way:
    /// a crash and the restart an orchestrator would make. The new process takes the old one's place (and replica index).
    /// </summary>
    public async Task<ChildProcess> KillAndRestartAsync(ChildProcess victim, CancellationToken cancellationToken)
    {
        await victim.KillAsync(cancellationToken);
        return await RestartAsync(victim);
    }

    /// <summary>Starts again a process started here that has exited; the new one takes the old one's place.</summary>
    public async Task<ChildProcess> RestartAsync(ChildProcess exited)
    {
        await exited.DisposeAsync();
        var restarted = exited.Restart();
        Replace(exited, restarted);
        return restarted;
    }

    private void Replace(ChildProcess old, ChildProcess replacement)
    {
        var kept = _started.Reverse().Select(s => ReferenceEquals(s, old) ? replacement : s).ToList();
        _started.Clear();
        foreach (var k in kept)
        {
            _started.Push(k);
        }

        foreach (var list in new[] { _scorings, _selections })
        {
            if (list.IndexOf(old) is var i and >= 0)
            {
                list[i] = replacement;
            }
        }
    }

    /// <summary>SIGKILLs the broker node on <paramref name="nodePort"/> (scripts/broker.sh kill): a crash, no goodbye to clients or peers.</summary>
    public async Task KillBrokerNodeAsync(int nodePort, CancellationToken cancellationToken)
    {
        var code = await Repo.RunAsync(repo.Script("broker.sh"), ["kill", _brokerDir, nodePort.ToString(CultureInfo.InvariantCulture)], repo.Root, cancellationToken, _brokerEnv);
        if (code != 0)
        {
            throw new InvalidOperationException($"scripts/broker.sh kill {_brokerDir} {nodePort} failed (exit {code}).");
        }
    }

    /// <summary>Starts every broker node that is not running (a killed node restarts from its data and rejoins); returns once all run.</summary>
    public async Task RestartDeadBrokerNodesAsync(CancellationToken cancellationToken)
    {
        // It prints the nodes' URIs again: the services have them already.
        var code = await Repo.RunAsync(repo.Script("broker.sh"), ["start", _brokerDir], repo.Root, cancellationToken, _brokerEnv, onLine: _ => { });
        if (code != 0)
        {
            throw new InvalidOperationException($"scripts/broker.sh start {_brokerDir} (restarting dead nodes) failed (exit {code}); see {_brokerDir}.");
        }
    }

    /// <summary>AMQP port of the node leading quorum queue <paramref name="queue"/>, asked of a node that runs (null: not known now).</summary>
    public async Task<int?> QueueLeaderPortAsync(string queue, CancellationToken cancellationToken)
    {
        foreach (var port in BrokerNodePorts)
        {
            var env = new Dictionary<string, string>(_brokerEnv) { ["JESTMESH_AMQP_PORT"] = port.ToString(CultureInfo.InvariantCulture) };
            var json = new System.Text.StringBuilder();
            var code = await Repo.RunAsync(repo.Script("broker.sh"), ["ctl", _brokerDir, "list_queues", "name", "leader", "--formatter", "json", "-q"], repo.Root, cancellationToken, env,
                line => json.AppendLine(line));
            if (code != 0)
            {
                continue;
            }

            using var document = System.Text.Json.JsonDocument.Parse(json.ToString());
            foreach (var row in document.RootElement.EnumerateArray())
            {
                // Node names are jestmesh-PORT@localhost (scripts/broker.sh).
                if (row.GetProperty("name").GetString() == queue && row.GetProperty("leader").GetString() is { } leader
                    && int.TryParse(leader.AsSpan("jestmesh-".Length, leader.IndexOf('@', StringComparison.Ordinal) - "jestmesh-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out var leaderPort))
                {
                    return leaderPort;
                }
            }

            return null;
        }

        return null;
    }

    /// <summary>
    /// The broker's (first) AMQP port for a kept data directory: RabbitMQ names its nodes (and so their data) after their
    /// ports, so a restart must reuse the ports recorded at the first start. A taken port is refused rather than replaced,
    /// and so is a different cluster size than the data was made with.
    /// </summary>
    private static int KeptAmqpPort(string brokerDir, int nodes)
    {
        var file = Path.Combine(brokerDir, "amqp-port");
        var nodesFile = Path.Combine(brokerDir, "nodes");
        if (File.Exists(file) && int.TryParse(File.ReadAllText(file).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var kept))
        {
            var keptNodes = File.Exists(nodesFile) && int.TryParse(File.ReadAllText(nodesFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : 1;
            if (keptNodes != nodes)
            {
                throw new InvalidOperationException($"the broker data of {brokerDir} is a {keptNodes}-node broker; this start asks for {nodes} " +
                    $"(--cluster {keptNodes} resumes it, or use another --state).");
            }

            if (Enumerable.Range(kept, nodes).FirstOrDefault(p => !Repo.PortFree(p)) is var taken and > 0)
            {
                throw new InvalidOperationException($"the broker of {brokerDir} listens on 127.0.0.1:{taken} (its data is named after that port), which is taken: " +
                    "is another `jestmesh up` running on this --state?");
            }

            return kept;
        }

        var port = FreeConsecutivePorts(nodes);
        Directory.CreateDirectory(brokerDir);
        File.WriteAllText(file, port.ToString(CultureInfo.InvariantCulture));
        File.WriteAllText(nodesFile, nodes.ToString(CultureInfo.InvariantCulture));
        return port;
    }

    /// <summary>
    /// The first of <paramref name="count"/> consecutive loopback ports that are free now, together with each one's
    /// Erlang distribution port (AMQP + 20000), as a cluster's nodes take them.
    /// </summary>
    private static int FreeConsecutivePorts(int count)
    {
        if (count == 1)
        {
            return Repo.FreePort();
        }

        for (var attempt = 0; attempt < 200; attempt++)
        {
            var first = Random.Shared.Next(20_000, 40_000);
            if (Enumerable.Range(first, count).All(p => Repo.PortFree(p) && Repo.PortFree(p + 20_000)))
            {
                return first;
            }
        }

        throw new InvalidOperationException($"found no {count} consecutive free ports on 127.0.0.1 for the broker's nodes.");
    }

    /// <summary>Starts a service host as a child process wired to the broker and the OTLP receiver; stopped with the pipeline.</summary>
    public ChildProcess Start(string host, Dictionary<string, string> settings, int? port = null, string? logName = null)
    {
        var env = new Dictionary<string, string>(settings)
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port ?? Repo.FreePort()}",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["Messaging__Uri"] = _amqp,
            ["Messaging__QueuePrefix"] = Prefix,
            ["OTEL_EXPORTER_OTLP_ENDPOINT"] = Otlp.Endpoint,
            ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf",
            ["OTEL_BSP_SCHEDULE_DELAY"] = "1000",
            ["OTEL_METRIC_EXPORT_INTERVAL"] = "2000",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
        };
        var dll = repo.HostDll(host);
        var child = ChildProcess.Start(host, "dotnet", [dll], Path.GetDirectoryName(dll)!, env, Path.Combine(outDirectory, "logs", (logName ?? host) + ".log"));
        _started.Push(child);
        return child;
    }

    /// <summary>A process started here that has exited (none while all run).</summary>
    public ChildProcess? FirstExited() => _started.OfType<ChildProcess>().FirstOrDefault(p => p.HasExited);

    /// <summary>Polls <paramref name="condition"/> until it holds; fails early, with its log's tail, when a started process exits.</summary>
    public async Task WaitUntilAsync(string what, Func<CancellationToken, Task<bool>> condition, CancellationToken cancellationToken, TimeSpan? deadline = null)
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

    /// <summary>Stops one process started here (a run's Ingest or Trainer) and forgets it.</summary>
    public async Task StopAsync(ChildProcess item)
    {
        await item.DisposeAsync();
        var keep = _started.Where(s => !ReferenceEquals(s, item)).Reverse().ToList();
        _started.Clear();
        foreach (var k in keep)
        {
            _started.Push(k);
        }
    }

    /// <summary>Stops whatever is still running: service processes first, all at once, then the rest in reverse order.</summary>
    public async ValueTask DisposeAsync()
    {
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

    private sealed class Cleanup(Func<Task> action) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync() => await action();
    }
}

/// <summary>What differs between the pipelines of <c>demo</c> (defaults: throwaway broker, free ports, fresh key) and <c>up</c>.</summary>
internal sealed record PipelineSettings
{
    /// <summary>Keep the broker's data directory (and its AMQP port) across starts, so queues and Selection's batch log survive.</summary>
    public bool KeepBrokerData { get; init; }

    /// <summary>RabbitMQ nodes: 1, or a cluster of this many on loopback (quorum queues and the batch log replicated on all).</summary>
    public int BrokerNodes { get; init; } = 1;

    /// <summary>The first Selection replica's gRPC port (null: free ones).</summary>
    public int? SelectionPort { get; init; }

    /// <summary>Selection's API key (null: a fresh random one).</summary>
    public string? ApiKey { get; init; }

    /// <summary>Directory of Scoring's reference-embedding cache file (null: the repository's <c>.jestmesh/cache</c>).</summary>
    public string? CacheDirectory { get; init; }

    /// <summary>Scoring processes, competing consumers of the super-batch queue; each keeps its own cache file.</summary>
    public int ScoringReplicas { get; init; } = 1;

    /// <summary>Selection processes on consecutive ports from <see cref="SelectionPort"/> (or free ones); one holds a job at a time.</summary>
    public int SelectionReplicas { get; init; } = 1;
}
