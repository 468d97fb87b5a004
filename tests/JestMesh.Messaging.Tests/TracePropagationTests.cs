using System.Collections.Concurrent;
using System.Diagnostics;
using JestMesh.TestKit;
using OpenTelemetry;
using OpenTelemetry.Trace;

namespace JestMesh.Messaging.Tests;

[Trait("Tier", "Broker")]
public sealed class TracePropagationTests
{
    private static readonly ActivitySource TestSource = new("JestMesh.Tests.Trace");

    [Fact]
    public async Task Consumer_span_continues_the_trace_and_links_to_the_publish_context()
    {
        var exported = new ExportedSpanCollection();
        using var tracing = Sdk.CreateTracerProviderBuilder()
            .AddSource(MessagingTelemetry.Name, TestSource.Name)
            .SetSampler(new AlwaysOnSampler())
            .AddInMemoryExporter(exported)
            .Build();
        await using var client = new BrokerClient(TestBroker.Shared().Options(TestNames.Unique("trace")));
        await client.Connections.DeclareTopologyAsync(CancellationToken.None);
        var seen = new ConcurrentQueue<(ActivityContext Current, ActivityContext Producer, ActivityLink[] Links)>();
        var consumer = client.NewConsumer();
        await consumer.StartAsync(client.Topology.SuperBatches, (message, _) =>
        {
            var current = Activity.Current!;
            seen.Enqueue((current.Context, message.ProducerContext, current.Links.ToArray()));
            return Task.CompletedTask;
        }, CancellationToken.None);

        ActivityTraceId traceId;
        using (var root = TestSource.StartActivity("ingest.run"))
        {
            traceId = root!.TraceId;
            await client.Publisher.PublishAsync(OutgoingMessage.ToQueue(client.Topology.SuperBatches, "traced", new byte[] { 1 }), CancellationToken.None);
        }
        await Eventually.WaitUntilAsync(() => !seen.IsEmpty, TimeSpan.FromSeconds(30), "the traced delivery");
        tracing.ForceFlush();

        var publish = Assert.Single(exported, a => a.TraceId == traceId && a.Kind == ActivityKind.Producer);
        var (current, producer, links) = Assert.Single(seen);
        Assert.Equal(traceId, current.TraceId);
        Assert.Equal(publish.SpanId, producer.SpanId);
        Assert.Contains(links, link => link.Context.SpanId == publish.SpanId && link.Context.TraceId == traceId);
        await Eventually.WaitUntilAsync(() => { tracing.ForceFlush(); return exported.Any(a => a.TraceId == traceId && a.Kind == ActivityKind.Consumer); },
            TimeSpan.FromSeconds(10), "the consumer span to be exported");
        var process = exported.Single(a => a.TraceId == traceId && a.Kind == ActivityKind.Consumer);
        Assert.Equal(publish.SpanId, process.ParentSpanId);
    }
}

/// <summary>W3C trace context in AMQP headers: no broker.</summary>
[Trait("Tier", "Unit")]
public sealed class TraceContextHeaderTests
{
    [Fact]
    public void Headers_round_trip_the_w3c_context_also_as_amqp_byte_arrays()
    {
        var context = new ActivityContext(ActivityTraceId.CreateRandom(), ActivitySpanId.CreateRandom(), ActivityTraceFlags.Recorded);
        var headers = new Dictionary<string, object?>();
        MessagingTelemetry.Inject(context, headers);
        // The broker hands string headers back as byte arrays.
        var received = headers.ToDictionary(p => p.Key, p => (object?)System.Text.Encoding.UTF8.GetBytes((string)p.Value!));

        var extracted = MessagingTelemetry.Extract(received).ActivityContext;

        Assert.Equal(context.TraceId, extracted.TraceId);
        Assert.Equal(context.SpanId, extracted.SpanId);
        Assert.Equal(ActivityTraceFlags.Recorded, extracted.TraceFlags);
        Assert.Equal(default, MessagingTelemetry.Extract(new Dictionary<string, object?> { ["traceparent"] = "garbage" }).ActivityContext);
    }
}
