using JestMesh.Cli.Demo;

namespace JestMesh.Cli.Commands;

/// <summary>
/// A Selection service for the bench: its own process with the service's shipped settings, as it is
/// deployed (the Release build of the JestMesh.Selection host, built when missing or stale).
/// </summary>
internal sealed class BenchSelectionHost : IAsyncDisposable
{
    private readonly ChildProcess _process;

    private BenchSelectionHost(ChildProcess process) => _process = process;

    public static async Task<BenchSelectionHost> StartProcessAsync(string amqp, string prefix, int port, string apiKey, BrokerProbe probe, CancellationToken cancellationToken)
    {
        var repo = Repo.Locate();
        await repo.EnsureBuiltAsync(["JestMesh.Selection"], Console.Error.WriteLine, cancellationToken);
        var dll = repo.HostDll("JestMesh.Selection");
        var environment = new Dictionary<string, string>
        {
            ["ASPNETCORE_URLS"] = $"http://127.0.0.1:{port}",
            ["DOTNET_ENVIRONMENT"] = "Production",
            ["Messaging__Uri"] = amqp,
            ["Messaging__QueuePrefix"] = prefix,
            ["Messaging__ClientName"] = prefix,
            ["Selection__ApiKey"] = apiKey,
            ["Logging__LogLevel__Default"] = "Warning",
        };
        var log = Path.Combine(Path.GetTempPath(), $"{prefix}-selection.log");
        var process = ChildProcess.Start("JestMesh.Selection", "dotnet", [dll], Path.GetDirectoryName(dll)!, environment, log);
        var host = new BenchSelectionHost(process);
        try
        {
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(TimeSpan.FromMinutes(1));
            // Ready once it serves gRPC and has declared its batch log (it reads the log back first).
            while (!(await Repo.PortOpenAsync(port, deadline.Token) && await probe.DepthAsync($"{prefix}.selection.log", deadline.Token) is not null))
            {
                if (process.HasExited)
                {
                    throw new InvalidOperationException($"the Selection service exited with {process.ExitCode} at start; its log is {log}:\n{process.Tail()}");
                }
                await Task.Delay(100, deadline.Token);
            }
            return host;
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
    }

    /// <summary>The Selection process's id (for its /proc figures).</summary>
    public int ProcessId => _process.Id;

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
