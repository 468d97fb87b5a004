using System.Globalization;
using JestMesh.Messaging;
using JestMesh.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;

namespace JestMesh.Trainer.Tests;

/// <summary>Starts the real Ingest and Scoring hosts in the test process, on the test broker.</summary>
public static class PipelineHosts
{
    /// <summary>The broker settings of <paramref name="options"/> as configuration keys.</summary>
    public static Dictionary<string, string?> Settings(MessagingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new()
        {
            ["Messaging:Uri"] = options.Uri,
            ["Messaging:QueuePrefix"] = options.QueuePrefix,
            ["Messaging:RecoveryInterval"] = options.RecoveryInterval.ToString("c", CultureInfo.InvariantCulture),
            ["Messaging:RetryDelay"] = options.RetryDelay.ToString("c", CultureInfo.InvariantCulture),
            ["Messaging:ClientName"] = options.ClientName,
        };
    }

    /// <summary>Builds and starts host <paramref name="name"/> with <paramref name="settings"/> only.</summary>
    public static async Task<WebApplication> StartAsync(string root, string name, Dictionary<string, string?> settings, Action<WebApplicationBuilder> add)
    {
        ArgumentNullException.ThrowIfNull(add);
        // An empty content root: the hosts' appsettings.json files (copied next to the tests) must not leak in.
        var contentRoot = Directory.CreateDirectory(Path.Combine(root, name)).FullName;
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { ApplicationName = name, EnvironmentName = "Testing", ContentRootPath = contentRoot });
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(settings);
        builder.AddServiceDefaults();
        add(builder);
        var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        return app;
    }
}
