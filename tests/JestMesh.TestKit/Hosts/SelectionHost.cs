using Grpc.Net.Client;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using JestMesh.Selection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace JestMesh.TestKit;

/// <summary>The real Selection service, wired exactly as Program.cs does, on TestServer or on Kestrel at a loopback port.</summary>
public sealed class SelectionHost : IAsyncDisposable
{
    public const string ApiKey = "test-api-key-0123456789";

    private readonly WebApplication _app;

    private SelectionHost(WebApplication app, int? port, bool https)
    {
        _app = app;
        Port = port;
        Https = https;
    }

    /// <summary>Serves https:// (Selection:Tls set; Kestrel hosts only).</summary>
    public bool Https { get; }

    /// <summary>Loopback port (Kestrel hosts only).</summary>
    public int? Port { get; }

    /// <summary>http://127.0.0.1:port, or https:// (Kestrel hosts only).</summary>
    public string Address => Port is { } port ? $"{(Https ? "https" : "http")}://127.0.0.1:{port}" : throw new InvalidOperationException("A TestServer host has no address; start it with kestrel: true.");

    public IServiceProvider Services => _app.Services;

    public SessionStore Store => _app.Services.GetRequiredService<SessionStore>();

    /// <summary>
    /// Starts the host (Kestrel on <paramref name="port"/> or a free loopback port when <paramref name="kestrel"/>,
    /// else TestServer) and returns once its session store has loaded the batch log.
    /// </summary>
    public static async Task<SelectionHost> StartAsync(MessagingOptions messaging, bool kestrel = false, int? port = null, IDictionary<string, string?>? settings = null)
    {
        ArgumentNullException.ThrowIfNull(messaging);
        var config = ServiceHosts.Settings(messaging);
        config["Selection:ApiKey"] = ApiKey;
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }
        int? bound = kestrel ? port ?? FreePort() : null;
        // With a serving certificate in its settings the host listens on https://, as deployed.
        var https = kestrel && !string.IsNullOrEmpty(config.GetValueOrDefault("Selection:Tls:CertificateFile"));
        var app = await ServiceHosts.StartAsync("JestMesh.Selection", config, b => b.AddSelectionServices(), a => a.MapSelection(), bound, https);
        var host = new SelectionHost(app, bound, https);
        try
        {
            await host.Store.Loaded.Within(TimeSpan.FromSeconds(60), "Selection to load its batch log");
        }
        catch
        {
            await host.DisposeAsync();
            throw;
        }
        return host;
    }

    /// <summary>A channel to this host: through TestServer's handler, or over loopback TCP.</summary>
    public GrpcChannel Channel(int maxMessageBytes = 64 * 1024 * 1024, HttpMessageHandler? handler = null)
    {
        if (Port is not null)
        {
            return GrpcChannel.ForAddress(Address, new GrpcChannelOptions
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

    public static int FreePort() => ServiceHosts.FreePort();

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
