using Grpc.Health.V1;
using Grpc.Net.Client;
using JestMesh.Messaging;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace JestMesh.ServiceDefaults.Tests;

[Trait("Tier", "Unit")]
public sealed class ServiceDefaultsTests
{
    private static WebApplicationBuilder Builder(Dictionary<string, string?> settings)
    {
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseTestServer();
        builder.Configuration.AddInMemoryCollection(settings);
        return builder;
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("Information", true)]
    public async Task Grpc_server_internals_log_from_warning_unless_a_setting_says_otherwise(string? level, bool informationEnabled)
    {
        var builder = Builder(level is null ? [] : new() { [$"Logging:LogLevel:{ServiceDefaultsExtensions.GrpcServerLogCategory}"] = level });
        builder.AddServiceDefaults();
        await using var app = builder.Build();
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Grpc.AspNetCore.Server.ServerCallHandler");

        Assert.Equal(informationEnabled, logger.IsEnabled(LogLevel.Information));
        Assert.True(logger.IsEnabled(LogLevel.Warning));
        Assert.True(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("JestMesh.Selection").IsEnabled(LogLevel.Information));
    }

    [Fact]
    public async Task Bad_settings_stop_the_service_at_start_naming_each_setting()
    {
        var builder = Builder(new() { ["Messaging:Uri"] = "http://127.0.0.1:5672/", ["Messaging:Prefetch"] = "0" });
        builder.Services.AddValidatedOptions<MessagingOptions>(builder.Configuration, MessagingOptions.SectionName);
        await using var app = builder.Build();

        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());

        Assert.Contains(error.Failures, f => f.StartsWith("Messaging:Prefetch:", StringComparison.Ordinal));
        Assert.Contains(error.Failures, f => f.StartsWith("Messaging:Uri: must be an absolute amqp://", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Misspelt_setting_stops_the_service_naming_it()
    {
        var builder = Builder(new() { ["Messaging:Uri"] = "amqp://127.0.0.1:5672/", ["Messaging:Prefech"] = "8" });
        builder.Services.AddValidatedOptions<MessagingOptions>(builder.Configuration, MessagingOptions.SectionName);
        await using var app = builder.Build();

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => app.StartAsync());

        Assert.Contains("Prefech", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Valid_settings_start_and_bind()
    {
        var builder = Builder(new() { ["Messaging:Uri"] = "amqp://127.0.0.1:5672/", ["Messaging:Prefetch"] = "8" });
        builder.Services.AddValidatedOptions<MessagingOptions>(builder.Configuration, MessagingOptions.SectionName);
        await using var app = builder.Build();

        await app.StartAsync();

        Assert.Equal(8, app.Services.GetRequiredService<IOptions<MessagingOptions>>().Value.Prefetch);
        await app.StopAsync();
    }

    [Fact]
    public async Task Liveness_and_readiness_are_separate_grpc_health_services()
    {
        var ready = false;
        var builder = Builder([]);
        builder.AddServiceDefaults();
        builder.Services.AddHealthChecks().AddReadinessCheck("dependency", _ => Volatile.Read(ref ready), "the dependency is reachable");
        await using var app = builder.Build();
        app.MapDefaultEndpoints();
        await app.StartAsync();
        using var channel = GrpcChannel.ForAddress(app.GetTestServer().BaseAddress, new GrpcChannelOptions { HttpHandler = app.GetTestServer().CreateHandler() });
        var health = new Health.HealthClient(channel);

        var liveWhileNotReady = await health.CheckAsync(new HealthCheckRequest { Service = ServiceDefaultsExtensions.LivenessService });
        var readyWhileNotReady = await health.CheckAsync(new HealthCheckRequest { Service = ServiceDefaultsExtensions.ReadinessService });
        Volatile.Write(ref ready, true);
        var readyAfter = await health.CheckAsync(new HealthCheckRequest { Service = ServiceDefaultsExtensions.ReadinessService });

        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, liveWhileNotReady.Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.NotServing, readyWhileNotReady.Status);
        Assert.Equal(HealthCheckResponse.Types.ServingStatus.Serving, readyAfter.Status);
        await app.StopAsync();
    }
}
