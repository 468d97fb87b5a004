using JestMesh.Protos.V1;
using JestMesh.ServiceDefaults;
using JestMesh.TestKit;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using CurationClient = JestMesh.Protos.V1.Curation.CurationClient;

namespace JestMesh.Selection.Tests;

/// <summary>D6: what a client's cancel leaves in the service's log (a host of its own, with its log captured).</summary>
[Trait("Tier", "Broker")]
[Collection(SelectionCollection.Name)]
public sealed class CancelLogTests(SelectionFixture fixture)
{
    [Fact]
    public async Task A_client_cancel_logs_no_stack_trace_at_information()
    {
        var options = fixture.Broker.Options(TestNames.Unique("d6-cancel"));
        var records = new LogCapture();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            ApplicationName = "JestMesh.Selection",
            EnvironmentName = "Testing",
            ContentRootPath = Directory.CreateTempSubdirectory("jm-selection-log-").FullName,
        });
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Messaging:Uri"] = options.Uri,
            ["Messaging:QueuePrefix"] = options.QueuePrefix,
            ["Messaging:ClientName"] = options.ClientName,
            ["Selection:ApiKey"] = SelectionHost.ApiKey,
        });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(records);
        builder.Logging.SetMinimumLevel(LogLevel.Information);
        builder.WebHost.UseTestServer();
        builder.AddServiceDefaults();
        builder.AddSelectionServices();
        await using var app = builder.Build();
        app.MapDefaultEndpoints();
        app.MapSelection();
        await app.StartAsync();
        await app.Services.GetRequiredService<SessionStore>().Loaded.WaitAsync(ProtoClient.Deadline);
        await using var broker = new BrokerClient(options);
        await TestData.PublishAsync(fixture.Feeder, broker, "job", 2, 64);
        using var channel = Grpc.Net.Client.GrpcChannel.ForAddress("http://localhost", new Grpc.Net.Client.GrpcChannelOptions
        {
            HttpHandler = app.GetTestServer().CreateHandler(),
            MaxReceiveMessageSize = 64 * 1024 * 1024,
        });
        using (var cancel = new CancellationTokenSource())
        {
            using var call = new CurationClient(channel).Curate(SelectionHost.Auth(), cancellationToken: cancel.Token);
            await call.RequestStream.WriteAsync(new CurateRequest { Open = Sessions.Open("job", Policy.Learnability) });
            while ((await ProtoClient.NextAsync(call))!.KindCase != CurateResponse.KindOneofCase.Candidate)
            {
            }
            await cancel.CancelAsync();
        }
        await Task.Delay(1000);
        await app.StopAsync();
        var withTraces = records.Snapshot().Where(r => r.Level >= LogLevel.Information && r.Exception is not null).ToList();
        Assert.True(withTraces.Count == 0, string.Join("\n", withTraces.Select(r => $"{r.Level} {r.Category}: {r.Message} ({r.Exception!.GetType().Name})")));
    }

    private sealed record LogRecord(LogLevel Level, string Category, string Message, Exception? Exception);

    private sealed class LogCapture : ILoggerProvider
    {
        private readonly List<LogRecord> _records = [];

        public List<LogRecord> Snapshot()
        {
            lock (_records)
            {
                return [.. _records];
            }
        }

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(LogCapture owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                lock (owner._records)
                {
                    owner._records.Add(new LogRecord(logLevel, category, formatter(state, exception), exception));
                }
            }
        }
    }
}
