using System.Net;
using System.Net.Sockets;
using Grpc.Net.Client;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace JestMesh.Selection.Tests;

/// <summary>The real Selection service, wired exactly as Program.cs does, on TestServer or on Kestrel at a loopback port.</summary>
public sealed class SelectionHost : IAsyncDisposable
{
    public const string ApiKey = "test-api-key-0123456789";

    private static readonly Lazy<string> EmptyContentRoot = new(() => Directory.CreateTempSubdirectory("jm-selection-root-").FullName);

    private readonly WebApplication _app;

    private SelectionHost(WebApplication app, int? port)
    {
        _app = app;
        Port = port;
    }

    /// <summary>Loopback port (Kestrel hosts only).</summary>
    public int? Port { get; }

    public IServiceProvider Services => _app.Services;

    public SessionStore Store => _app.Services.GetRequiredService<SessionStore>();

    public static async Task<SelectionHost> StartAsync(MessagingOptions messaging, bool kestrel = false, int? port = null, IDictionary<string, string?>? settings = null)
    {
        ArgumentNullException.ThrowIfNull(messaging);
        // An empty content root: appsettings.json files of hosts copied next to the tests must not leak in.
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ApplicationName = "JestMesh.Selection",
            EnvironmentName = "Testing",
            ContentRootPath = EmptyContentRoot.Value,
        });
        var config = new Dictionary<string, string?>
        {
            ["Messaging:Uri"] = messaging.Uri,
            ["Messaging:QueuePrefix"] = messaging.QueuePrefix,
            ["Messaging:RecoveryInterval"] = messaging.RecoveryInterval.ToString(),
            ["Messaging:RetryDelay"] = messaging.RetryDelay.ToString(),
            ["Messaging:ClientName"] = messaging.ClientName,
            ["Selection:ApiKey"] = ApiKey,
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }
        builder.Configuration.AddInMemoryCollection(config);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        int? bound = null;
        if (kestrel)
        {
            bound = port ?? FreePort();
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, bound.Value, l => l.Protocols = HttpProtocols.Http2));
        }
        else
        {
            builder.WebHost.UseTestServer();
        }
        builder.AddServiceDefaults();
        builder.AddSelectionServices();
        var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapSelection();
        await app.StartAsync();
        var host = new SelectionHost(app, bound);
        await host.Store.Loaded.WaitAsync(TimeSpan.FromSeconds(60));
        return host;
    }

    /// <summary>A channel to this host: through TestServer's handler, or over loopback TCP.</summary>
    public GrpcChannel Channel(int maxMessageBytes = 64 * 1024 * 1024, HttpMessageHandler? handler = null)
    {
        if (Port is { } port)
        {
            return GrpcChannel.ForAddress($"http://127.0.0.1:{port}", new GrpcChannelOptions
            {
                MaxReceiveMessageSize = maxMessageBytes,
                MaxSendMessageSize = maxMessageBytes,
                HttpHandler = handler ?? new SocketsHttpHandler { EnableMultipleHttp2Connections = true },
            });
        }
        return GrpcChannel.ForAddress("http://localhost", new GrpcChannelOptions
        {
            MaxReceiveMessageSize = maxMessageBytes,
            MaxSendMessageSize = maxMessageBytes,
            HttpHandler = _app.GetTestServer().CreateHandler(),
        });
    }

    public static Grpc.Core.Metadata Auth(string key = ApiKey) => new() { { "authorization", $"Bearer {key}" } };

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await _app.StopAsync(stop.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>Session settings used across the tests.</summary>
public static class Sessions
{
    public static SessionOpen Open(string job, Policy policy, double filterRatio = 0.5, int chunks = 4, ulong seed = 1, double gain = 10) => new()
    {
        Job = job,
        Policy = policy,
        FilterRatio = filterRatio,
        Chunks = chunks,
        Gain = gain,
        Seed = seed,
        Loss = LossKind.Sigmoid,
    };
}
