using System.Diagnostics;
using System.Diagnostics.Metrics;
using JestMesh.Cli.Demo;
using JestMesh.TestKit;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace JestMesh.Cli.Tests.Demo;

[Trait("Tier", "Unit")]
public sealed class OtlpReceiverTests
{
    private static readonly TimeSpan Deadline = TimeSpan.FromSeconds(30);

    private static TracerProvider Tracer(string source, string endpoint) => Sdk.CreateTracerProviderBuilder()
        .AddSource(source)
        .ConfigureResource(r => r.AddService("JestMesh.TestService"))
        .AddOtlpExporter(o =>
        {
            o.Endpoint = new Uri(endpoint + "/v1/traces");
            o.Protocol = OtlpExportProtocol.HttpProtobuf;
            o.ExportProcessorType = ExportProcessorType.Simple;
        })
        .Build();

    [Fact]
    public async Task Spans_exported_by_the_OpenTelemetry_SDK_arrive_with_name_service_times_and_attributes()
    {
        await using var receiver = new OtlpReceiver(Repo.FreePort(), forward: null);
        var name = "JestMesh.Test." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(name);
        using (Tracer(name, receiver.Endpoint))
        {
            using var activity = source.StartActivity("trainer.step");
            activity!.SetTag("jestmesh.sequence", 7L);
            activity.SetTag("jestmesh.super_batch.id", "demo-jest-3");
            Thread.SpinWait(100_000);
        }

        await Eventually.WaitUntilAsync(() => receiver.Spans.Count == 1, Deadline, "the span arrives");
        var span = receiver.Spans[0];
        Assert.Equal("trainer.step", span.Name);
        Assert.Equal("JestMesh.TestService", span.Service);
        Assert.Equal("7", span.Attributes["jestmesh.sequence"]);
        Assert.Equal("demo-jest-3", span.Attributes["jestmesh.super_batch.id"]);
        Assert.True(span.EndUnixNano > span.StartUnixNano);
        Assert.InRange(span.StartUnixNano / 1_000_000, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
    }

    [Fact]
    public async Task With_a_forward_address_the_collector_gets_the_same_spans()
    {
        await using var collector = new OtlpReceiver(Repo.FreePort(), forward: null);
        await using var receiver = new OtlpReceiver(Repo.FreePort(), new Uri(collector.Endpoint));
        var name = "JestMesh.Test." + Guid.NewGuid().ToString("N");
        using var source = new ActivitySource(name);
        using (Tracer(name, receiver.Endpoint))
        {
            source.StartActivity("selection.select")!.Dispose();
        }

        await Eventually.WaitUntilAsync(() => collector.Spans.Count == 1, Deadline, "the forwarded span reaches the collector");
        Assert.Equal("selection.select", collector.Spans[0].Name);
        Assert.Equal(0, receiver.ForwardFailures);
    }

    [Fact]
    public async Task Histogram_sums_are_read_from_exported_metrics()
    {
        await using var receiver = new OtlpReceiver(Repo.FreePort(), forward: null);
        var name = "JestMesh.Test." + Guid.NewGuid().ToString("N");
        using var meter = new Meter(name);
        var histogram = meter.CreateHistogram<double>("jestmesh.trainer.data_stall", "ms");
        using (var provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(name)
            .ConfigureResource(r => r.AddService("JestMesh.Trainer"))
            .AddOtlpExporter(o =>
            {
                o.Endpoint = new Uri(receiver.Endpoint + "/v1/metrics");
                o.Protocol = OtlpExportProtocol.HttpProtobuf;
            })
            .Build())
        {
            histogram.Record(2.5);
            histogram.Record(4.0);
            provider.ForceFlush();
        }

        await Eventually.WaitUntilAsync(() => receiver.HistogramSum("JestMesh.Trainer", "jestmesh.trainer.data_stall") is not null, Deadline, "the histogram arrives");
        Assert.Equal(6.5, receiver.HistogramSum("JestMesh.Trainer", "jestmesh.trainer.data_stall"));
    }

    [Fact]
    public void A_truncated_message_is_refused_naming_the_byte()
    {
        // Field 1, length-delimited, claims 10 bytes but carries 2.
        var e = Assert.Throws<InvalidDataException>(() => ProtoWire.Fields(new byte[] { 0x0A, 10, 1, 2 }));
        Assert.Contains("at byte 2 needs 10 bytes", e.Message, StringComparison.Ordinal);
    }
}
