using System.Globalization;
using System.Net;
using System.Net.Sockets;
using JestMesh.Data;
using JestMesh.Ingest;
using JestMesh.Messaging;
using JestMesh.Scoring;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace JestMesh.TestKit;

/// <summary>
/// The one way the tests build a real service host: wired as its Program.cs does (service defaults,
/// the service's own registrations, default endpoints), configured only from the given settings, in
/// the test process on TestServer or on Kestrel at a loopback port.
/// </summary>
public static class ServiceHosts
{
    // An empty content root: the hosts' appsettings.json files (copied next to the tests) must not leak in.
    private static readonly Lazy<string> EmptyContentRoot = new(() => Directory.CreateTempSubdirectory("jestmesh-host-root-").FullName);

    /// <summary>
    /// Builds and starts host <paramref name="name"/> with <paramref name="settings"/> only.
    /// <paramref name="add"/> registers the service; <paramref name="map"/> maps its endpoints.
    /// With <paramref name="kestrelPort"/> it listens (HTTP/2) on 127.0.0.1 at that port, else on TestServer;
    /// with <paramref name="https"/> too, on https://127.0.0.1:port as the manifests configure TLS (the
    /// URL's HTTPS defaults, i.e. the certificate the service's own settings give Kestrel; HTTP/1.1 and
    /// HTTP/2 by ALPN).
    /// </summary>
    public static async Task<WebApplication> StartAsync(string name, IDictionary<string, string?> settings, Action<WebApplicationBuilder> add,
        Action<WebApplication>? map = null, int? kestrelPort = null, bool https = false)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(add);
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ApplicationName = name,
            EnvironmentName = "Testing",
            ContentRootPath = EmptyContentRoot.Value,
        });
        builder.Configuration.AddInMemoryCollection(settings);
        builder.Logging.ClearProviders();
        builder.Logging.AddSimpleConsole().SetMinimumLevel(LogLevel.Warning);
        if (kestrelPort is { } tlsPort && https)
        {
            // Bound at start, after the service configured its HTTPS defaults (Listen would need them now).
            builder.WebHost.UseKestrel(k => k.ConfigureEndpointDefaults(l => l.Protocols = HttpProtocols.Http1AndHttp2));
            builder.WebHost.UseUrls($"https://127.0.0.1:{tlsPort}");
        }
        else if (kestrelPort is { } port)
        {
            builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
        }
        else
        {
            builder.WebHost.UseTestServer();
        }
        builder.AddServiceDefaults();
        add(builder);
        var app = builder.Build();
        app.MapDefaultEndpoints();
        map?.Invoke(app);
        try
        {
            await app.StartAsync();
        }
        catch
        {
            await app.DisposeAsync();
            throw;
        }
        return app;
    }

    /// <summary>The broker settings of <paramref name="options"/> as configuration keys (limits only where they differ from the defaults).</summary>
    public static Dictionary<string, string?> Settings(MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var defaults = new MessagingOptions();
        var settings = new Dictionary<string, string?>
        {
            ["Messaging:Uri"] = options.Uri,
            ["Messaging:QueuePrefix"] = options.QueuePrefix,
            ["Messaging:RecoveryInterval"] = options.RecoveryInterval.ToString("c", CultureInfo.InvariantCulture),
            ["Messaging:RetryDelay"] = options.RetryDelay.ToString("c", CultureInfo.InvariantCulture),
            ["Messaging:ClientName"] = options.ClientName,
        };
        if (options.Prefetch != defaults.Prefetch)
        {
            settings["Messaging:Prefetch"] = options.Prefetch.ToString(CultureInfo.InvariantCulture);
        }
        if (options.InputQueueMaxLength != defaults.InputQueueMaxLength)
        {
            settings["Messaging:InputQueueMaxLength"] = options.InputQueueMaxLength.ToString(CultureInfo.InvariantCulture);
        }
        return settings;
    }

    /// <summary>The real Scoring host on TestServer, scoring with the checkpoint in <paramref name="reference"/> on <paramref name="device"/>.</summary>
    public static Task<WebApplication> StartScoringAsync(MessagingOptions messaging, string reference, string expectedDataFingerprint,
        string device = "cpu", IDictionary<string, string?>? extra = null)
    {
        var settings = Settings(messaging);
        settings["Scoring:ReferenceDirectory"] = reference;
        settings["Scoring:Device"] = device;
        settings["Scoring:ExpectedDataFingerprint"] = expectedDataFingerprint;
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }
        return StartAsync("JestMesh.Scoring", settings, b => b.AddScoringServices());
    }

    /// <summary>
    /// The real Ingest host on TestServer; its worker publishes <paramref name="superBatches"/> super-batches of
    /// <paramref name="superBatchSize"/> for <paramref name="job"/> at start, <see cref="IngestWorker.Completion"/> says when done.
    /// </summary>
    public static async Task<(WebApplication App, IngestWorker Worker)> StartIngestAsync(MessagingOptions messaging, string job, int superBatchSize, int superBatches,
        DataOptions? data = null, int orderSeed = 0, IDictionary<string, string?>? extra = null)
    {
        var settings = Settings(messaging);
        settings["Ingest:Job"] = job;
        settings["Ingest:SuperBatchSize"] = superBatchSize.ToString(CultureInfo.InvariantCulture);
        settings["Ingest:MaxSuperBatches"] = superBatches.ToString(CultureInfo.InvariantCulture);
        settings["Ingest:DataSeed"] = (data?.Seed ?? 0).ToString(CultureInfo.InvariantCulture);
        settings["Ingest:OrderSeed"] = orderSeed.ToString(CultureInfo.InvariantCulture);
        foreach (var (key, value) in extra ?? new Dictionary<string, string?>())
        {
            settings[key] = value;
        }
        var app = await StartAsync("JestMesh.Ingest", settings, b => b.AddIngestServices());
        return (app, app.Services.GetRequiredService<IngestWorker>());
    }

    /// <summary>A TCP port free on 127.0.0.1 right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
