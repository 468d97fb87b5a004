using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text;
using OpenTelemetry.Context.Propagation;

namespace JestMesh.Messaging;

/// <summary>The messaging ActivitySource and Meter, and W3C trace-context propagation through AMQP headers.</summary>
public static class MessagingTelemetry
{
    public const string Name = "JestMesh.Messaging";

    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    internal static readonly Counter<long> Published = Meter.CreateCounter<long>("jestmesh.messaging.published", "{message}", "Messages confirmed by the broker.");
    internal static readonly Counter<long> PublishNacks = Meter.CreateCounter<long>("jestmesh.messaging.publish_nacks", "{message}", "Publishes the broker refused (queue full).");
    internal static readonly Counter<long> ConfirmTimeouts = Meter.CreateCounter<long>("jestmesh.messaging.confirm_timeouts", "{message}", "Publishes whose confirm did not come within Messaging:ConfirmTimeout (published again on a new channel).");
    internal static readonly Counter<long> Consumed = Meter.CreateCounter<long>("jestmesh.messaging.consumed", "{message}", "Messages processed and acked.");
    internal static readonly Counter<long> Duplicates = Meter.CreateCounter<long>("jestmesh.messaging.duplicates", "{message}", "Deliveries dropped because their message id was already processed.");
    internal static readonly Counter<long> DeadLettered = Meter.CreateCounter<long>("jestmesh.messaging.dead_lettered", "{message}", "Messages sent to the dead-letter exchange.");
    internal static readonly Histogram<double> ProcessDuration = Meter.CreateHistogram<double>("jestmesh.messaging.process.duration", "ms", "Handler time per delivery.");

    // Explicit W3C propagators rather than Propagators.DefaultTextMapPropagator: the default is a
    // no-op until an OpenTelemetry SDK is built, and a library used without the SDK must still
    // carry the context it was given.
    private static readonly TextMapPropagator Propagator =
        new CompositeTextMapPropagator([new TraceContextPropagator(), new BaggagePropagator()]);

    /// <summary>Writes traceparent/tracestate (and baggage) of <paramref name="context"/> into AMQP headers.</summary>
    public static void Inject(ActivityContext context, IDictionary<string, object?> headers)
    {
        ArgumentNullException.ThrowIfNull(headers);
        if (context == default)
        {
            return;
        }
        Propagator.Inject(new PropagationContext(context, OpenTelemetry.Baggage.Current), headers,
            static (carrier, key, value) => carrier[key] = value);
    }

    /// <summary>Reads the producer's trace context from AMQP headers (default when absent or malformed).</summary>
    public static PropagationContext Extract(IDictionary<string, object?>? headers)
    {
        if (headers is null)
        {
            return default;
        }
        return Propagator.Extract(default, headers, static (carrier, key) =>
            carrier.TryGetValue(key, out var value) ? HeaderText(value) is { } text ? [text] : [] : []);
    }

    /// <summary>AMQP delivers string headers as byte arrays; this turns either back into a string.</summary>
    public static string? HeaderText(object? value) => value switch
    {
        null => null,
        string s => s,
        byte[] bytes => Encoding.UTF8.GetString(bytes),
        ReadOnlyMemory<byte> memory => Encoding.UTF8.GetString(memory.Span),
        _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture),
    };
}
