using System.Net;
using JestMesh.Cli.Demo;
using JestMesh.Selection;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace JestMesh.Cli.Commands;

/// <summary>
/// A Selection service for the bench: its own process with the service's shipped settings (as it is
/// deployed), or hosted inside the caller's process (to separate the service's cost from the hop).
/// </summary>
internal sealed class BenchSelectionHost : IAsyncDisposable
{
    private readonly WebApplication? _app;
    private readonly ChildProcess? _process;

    private BenchSelectionHost(WebApplication? app, ChildProcess? process)
    {
        _app = app;
        _process = process;
    }

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
        var host = new BenchSelectionHost(null, process);
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

    public static async Task<BenchSelectionHost> StartInProcessAsync(string amqp, string prefix, int port, string apiKey, CancellationToken cancellationToken)
    {
        var builder = WebApplication.CreateBuilder();
        // The shipped appsettings.json of the service belongs to its own project: mirror its broker settings.
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Messaging:Uri"] = amqp,
            ["Messaging:QueuePrefix"] = prefix,
            ["Messaging:ClientName"] = prefix,
            ["Messaging:Prefetch"] = "16",
            ["Messaging:ConsumerConcurrency"] = "4",
            ["Selection:ApiKey"] = apiKey,
        });
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        builder.AddServiceDefaults();
        builder.AddSelectionServices();
        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapSelection();
        await app.StartAsync(cancellationToken);
        var store = (SessionStore)app.Services.GetService(typeof(SessionStore))!;
        await store.Loaded.WaitAsync(TimeSpan.FromMinutes(1), cancellationToken);
        return new BenchSelectionHost(app, null);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }
    }
}
