using System.Diagnostics;
using System.Diagnostics.Metrics;
using JestMesh.Protos;

namespace JestMesh.Selection;

/// <summary>The Selection service's ActivitySource and metrics (names from <see cref="Telemetry"/>).</summary>
public static class SelectionTelemetry
{
    public const string Name = Telemetry.Sources.Selection;

    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    internal static readonly Histogram<double> SelectionLatency = Meter.CreateHistogram<double>(Telemetry.Metrics.SelectionLatency, "ms", "Time to build S and sample one batch.");
    internal static readonly Histogram<double> MeanLearnability = Meter.CreateHistogram<double>(Telemetry.Metrics.SelectionScoreSelected, "{score}", "Mean S_ii over the selected examples.");
    internal static readonly Histogram<double> RecordLatency = Meter.CreateHistogram<double>(Telemetry.Metrics.SelectionRecord, "ms", "Time to append one curated batch to the durable batch log (publish to broker confirm).");
    internal static readonly Counter<long> Batches = Meter.CreateCounter<long>(Telemetry.Metrics.SelectionBatches, "{batch}", "Curated batches recorded.");
    internal static readonly Counter<long> Replayed = Meter.CreateCounter<long>(Telemetry.Metrics.SelectionReplayed, "{batch}", "Recorded batches replayed after a resume.");
    internal static readonly Histogram<long> Staleness = Meter.CreateHistogram<long>(Telemetry.Metrics.SelectionStaleness, "{step}", "Batches the learner trains between its scores and the batch they select.");
}
