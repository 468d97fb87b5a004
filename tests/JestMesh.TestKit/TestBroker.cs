using System.Diagnostics;
using JestMesh.Messaging;

namespace JestMesh.TestKit;

/// <summary>
/// The RabbitMQ broker the test command started (scripts/test.sh exports JESTMESH_TEST_AMQP_URI,
/// JESTMESH_TEST_BROKER_SCRIPT, JESTMESH_BROKER_DIR and JESTMESH_AMQP_PORT), or a private one a test
/// starts for itself. Can stop and start the broker application (rabbitmqctl stop_app / start_app).
/// </summary>
public sealed class TestBroker : IAsyncDisposable
{
    private readonly string _script;
    private readonly string _directory;
    private readonly int _port;
    private readonly int _nodes;
    private readonly bool _owned;

    private TestBroker(string uri, string script, string directory, int port, bool owned, int? tlsPort = null, int nodes = 1)
    {
        Uri = uri;
        _script = script;
        _directory = directory;
        _port = port;
        _owned = owned;
        TlsPort = tlsPort;
        _nodes = nodes;
    }

    /// <summary>AMQP ports of the broker's nodes (one, or every node of a cluster).</summary>
    public IReadOnlyList<int> NodePorts => Enumerable.Range(_port, _nodes).ToArray();

    /// <summary>AMQP URI of the broker.</summary>
    public string Uri { get; }

    /// <summary>Loopback port of the AMQPS listener (brokers started with a <see cref="TestPki"/> only).</summary>
    public int? TlsPort { get; }

    /// <summary>amqps://guest:guest@<paramref name="host"/>:TlsPort/ (brokers started with a <see cref="TestPki"/> only).</summary>
    public string TlsUri(string host = "localhost") =>
        TlsPort is { } port ? $"amqps://guest:guest@{host}:{port}/" : throw new InvalidOperationException("This broker has no AMQPS listener; start it with a TestPki.");

    /// <summary>The shared broker of the test run; fails with the command to run when it is missing.</summary>
    public static TestBroker Shared()
    {
        var uri = Environment.GetEnvironmentVariable("JESTMESH_TEST_AMQP_URI");
        if (string.IsNullOrEmpty(uri))
        {
            throw new InvalidOperationException(
                "JESTMESH_TEST_AMQP_URI is not set: run the tests with scripts/test.sh, which starts a private RabbitMQ broker on loopback and exports it.");
        }
        return new TestBroker(uri, Script(), Environment.GetEnvironmentVariable("JESTMESH_BROKER_DIR") ?? "",
            int.Parse(Environment.GetEnvironmentVariable("JESTMESH_AMQP_PORT") ?? "5679", System.Globalization.CultureInfo.InvariantCulture), owned: false);
    }

    /// <summary>
    /// Starts a broker of its own on JESTMESH_AMQP_PORT + <paramref name="portOffset"/>, for tests that
    /// restart the broker: stopping the shared one would disturb test assemblies running beside them.
    /// </summary>
    /// <remarks>
    /// With <paramref name="tls"/> it also listens for AMQPS (server.crt, client certificates asked
    /// for from ca.crt) on JESTMESH_TEST_AMQPS_PORT, by default its AMQP port + 400 (5699 + offset
    /// gives 61xx; each engineer's JESTMESH_AMQP_PORT keeps them apart).
    /// </remarks>
    public static Task<TestBroker> StartPrivateAsync(int portOffset, TestPki? tls = null) => StartAsync(portOffset, nodes: 1, tls);

    /// <summary>
    /// Starts a cluster of its own: <paramref name="nodes"/> RabbitMQ nodes on JESTMESH_AMQP_PORT +
    /// <paramref name="portOffset"/> and the ports after it, joined into one cluster (scripts/broker.sh
    /// with JESTMESH_BROKER_NODES). <see cref="Uri"/> lists every node, as Messaging:Uri takes them.
    /// </summary>
    public static Task<TestBroker> StartClusterAsync(int portOffset, int nodes) => StartAsync(portOffset, nodes, tls: null);

    private static async Task<TestBroker> StartAsync(int portOffset, int nodes, TestPki? tls)
    {
        var basePort = int.Parse(Environment.GetEnvironmentVariable("JESTMESH_AMQP_PORT") ?? "5679", System.Globalization.CultureInfo.InvariantCulture);
        var port = basePort + portOffset;
        int? tlsPort = tls is null ? null
            : Environment.GetEnvironmentVariable("JESTMESH_TEST_AMQPS_PORT") is { Length: > 0 } fixedPort
                ? int.Parse(fixedPort, System.Globalization.CultureInfo.InvariantCulture) : port + 400;
        var directory = Path.Combine(Path.GetTempPath(), $"jestmesh-private-broker-{port}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(directory);
        var script = Script();
        var environment = tls is null ? null : new Dictionary<string, string>
        {
            ["JESTMESH_AMQPS_PORT"] = tlsPort!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["JESTMESH_TLS_DIR"] = tls.Directory,
        };
        string output;
        try
        {
            output = await RunScriptAsync(script, port, nodes, "start", directory, environment, []);
        }
        catch
        {
            // The broker runs in a session of its own: a start that failed or timed out can still
            // leave it running, and nobody else knows its directory.
            await RunAsync(script, port, nodes, "stop", directory).ContinueWith(_ => { }, TaskScheduler.Default);
            throw;
        }
        return new TestBroker(output.Trim(), script, directory, port, owned: true, tlsPort, nodes);
    }

    /// <summary>SIGKILLs the node on <paramref name="nodePort"/>: a crash, no goodbye to clients or peers.</summary>
    public Task KillNodeAsync(int nodePort) => RunAsync(_script, _port, _nodes, "kill", _directory, nodePort.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>Starts every node that is not running (a killed node restarts from its data and rejoins).</summary>
    public Task RestartDeadNodesAsync() => RunAsync(_script, _port, _nodes, "start", _directory);

    /// <summary>Leader node and member nodes (node names) of the quorum queue <paramref name="queue"/>, asked of node <paramref name="nodePort"/>.</summary>
    public async Task<(string Leader, IReadOnlyList<string> Members)> QuorumQueueAsync(string queue, int nodePort)
    {
        var json = await RunAsync(_script, nodePort, _nodes, "ctl", _directory, "list_queues", "name", "leader", "members", "--formatter", "json", "-q");
        using var document = System.Text.Json.JsonDocument.Parse(json);
        foreach (var row in document.RootElement.EnumerateArray())
        {
            if (row.GetProperty("name").GetString() == queue)
            {
                return (row.GetProperty("leader").GetString() ?? "", row.GetProperty("members").EnumerateArray().Select(m => m.GetString() ?? "").ToArray());
            }
        }
        throw new InvalidOperationException($"queue {queue} is not listed by node {nodePort}:\n{json}");
    }

    /// <summary>Node name of the node on <paramref name="nodePort"/> (as the broker lists members and leaders).</summary>
    public static string NodeName(int nodePort) => $"jestmesh-{nodePort}@localhost";

    /// <summary>MessagingOptions for this broker with a unique queue prefix and test-friendly timings.</summary>
    public MessagingOptions Options(string prefix) => new()
    {
        Uri = Uri,
        QueuePrefix = prefix,
        RecoveryInterval = TimeSpan.FromMilliseconds(500),
        RetryDelay = TimeSpan.FromMilliseconds(20),
        ClientName = prefix,
    };

    /// <summary>rabbitmqctl stop_app: every connection drops, queues and messages stay on disk.</summary>
    public Task StopAppAsync() => RunAsync(_script, _port, _nodes, "ctl", _directory, "stop_app");

    /// <summary>Runs rabbitmqctl on the (first) node with <paramref name="arguments"/>; returns its output.</summary>
    public Task<string> CtlAsync(params string[] arguments) => RunAsync(_script, _port, _nodes, "ctl", _directory, arguments);

    /// <summary>rabbitmqctl start_app (returns once the application runs).</summary>
    public Task StartAppAsync() => RunAsync(_script, _port, _nodes, "ctl", _directory, "start_app");

    /// <summary>
    /// Closes, from the broker's side, the client connection whose local port is <paramref name="clientPort"/>
    /// (what the broker sees when a process dies: its unacked deliveries go back to the queue).
    /// </summary>
    public async Task CloseConnectionAsync(int clientPort, string reason)
    {
        var listing = await RunAsync(_script, _port, _nodes, "ctl", _directory, "list_connections", "pid", "peer_port", "-q", "--no-table-headers");
        var pid = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(line => line.Split('\t', StringSplitOptions.TrimEntries))
            .FirstOrDefault(columns => columns.Length == 2 && columns[1] == clientPort.ToString(System.Globalization.CultureInfo.InvariantCulture))?[0]
            ?? throw new InvalidOperationException($"No broker connection from client port {clientPort}; connections:\n{listing}");
        await RunAsync(_script, _port, _nodes, "ctl", _directory, "close_connection", pid, reason);
    }

    /// <summary>rabbitmqctl list_connections with <paramref name="columns"/>: one tab-separated line per connection.</summary>
    public async Task<IReadOnlyList<string[]>> ConnectionsAsync(params string[] columns)
    {
        var listing = await RunAsync(_script, _port, _nodes, "ctl", _directory, ["list_connections", .. columns, "-q", "--no-table-headers"]);
        return listing.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(line => line.Split('\t', StringSplitOptions.TrimEntries)).ToList();
    }

    private static readonly TimeSpan ScriptDeadline = TimeSpan.FromMinutes(10);

    private static string Script()
    {
        var script = Environment.GetEnvironmentVariable("JESTMESH_TEST_BROKER_SCRIPT");
        if (string.IsNullOrEmpty(script) || !File.Exists(script))
        {
            throw new InvalidOperationException(
                $"JESTMESH_TEST_BROKER_SCRIPT ('{script}') does not name scripts/broker.sh: run the tests with scripts/test.sh.");
        }
        return script;
    }

    private static Task<string> RunAsync(string script, int port, int nodes, string command, string directory, params string[] arguments) =>
        RunScriptAsync(script, port, nodes, command, directory, null, arguments);

    private static async Task<string> RunScriptAsync(string script, int port, int nodes, string command, string directory, IDictionary<string, string>? environment, string[] arguments)
    {
        var start = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(command);
        start.ArgumentList.Add(directory);
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }
        start.Environment["JESTMESH_AMQP_PORT"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment["JESTMESH_BROKER_NODES"] = nodes.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment.Remove("JESTMESH_DIST_PORT");
        start.Environment.Remove("JESTMESH_AMQPS_PORT");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[name] = value;
        }
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"Could not run {script}.");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        // A deadline against a hung broker, not a speed limit: at a load of 40-60 on 2 cores starting
        // a broker or one rabbitmqctl call took over the 2 minutes this used to allow.
        using var timeout = new CancellationTokenSource(ScriptDeadline);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{script} {command} {string.Join(' ', arguments)} (port {port}) did not finish within {ScriptDeadline.TotalMinutes:0} minutes.");
        }
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{script} {command} {string.Join(' ', arguments)} failed ({process.ExitCode}): {await stderr}");
        }
        return await stdout;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_owned)
        {
            return;
        }
        await RunAsync(_script, _port, _nodes, "stop", _directory);
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
            // Leftover files of a stopped broker are harmless in /tmp.
        }
    }
}
