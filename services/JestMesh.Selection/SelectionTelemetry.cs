using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace JestMesh.Selection;

/// <summary>The Selection service's ActivitySource and metrics.</summary>
public static class SelectionTelemetry
{
    public const string Name = "JestMesh.Selection";

    public static readonly ActivitySource Source = new(Name);
    public static readonly Meter Meter = new(Name);

    internal static readonly Histogram<double> SelectionLatency = Meter.CreateHistogram<double>("jestmesh.selection.latency", "ms", "Time to build S and sample one batch.");
    internal static readonly Histogram<double> MeanLearnability = Meter.CreateHistogram<double>("jestmesh.selection.score_selected", "{score}", "Mean S_ii over the selected examples.");
    internal static readonly Histogram<double> RecordLatency = Meter.CreateHistogram<double>("jestmesh.selection.record", "ms", "Time to append one curated batch to the durable batch log (publish to broker confirm).");
    internal static readonly Counter<long> Batches = Meter.CreateCounter<long>("jestmesh.selection.batches", "{batch}", "Curated batches recorded.");
    internal static readonly Counter<long> Replayed = Meter.CreateCounter<long>("jestmesh.selection.replayed", "{batch}", "Recorded batches replayed after a resume.");
    internal static readonly Histogram<long> Staleness = Meter.CreateHistogram<long>("jestmesh.selection.learner_staleness", "{step}", "Batches the learner trains between its scores and the batch they select.");
}
