using System.Collections.Concurrent;
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
    internal static readonly Counter<long> Evicted = Meter.CreateCounter<long>(Telemetry.Metrics.SelectionSessionsEvicted, "{session}", "Idle sessions dropped from memory (Selection:SessionIdleTimeout).");
    internal static readonly Counter<long> Rebuilt = Meter.CreateCounter<long>(Telemetry.Metrics.SelectionSessionsRebuilt, "{session}", "Evicted sessions rebuilt from the batch log for a resume.");

    // Every session store of the process (one per replica; tests run several), by batch log name.
    private static readonly ConcurrentDictionary<SessionStore, string> Stores = new();

    /// <summary>Sessions held in memory, per replica (tagged with its batch log): what eviction bounds.</summary>
    internal static readonly ObservableGauge<int> LiveSessions = Meter.CreateObservableGauge(Telemetry.Metrics.SelectionSessionsLive,
        () => Stores.Select(s => new Measurement<int>(s.Key.LiveSessions, new KeyValuePair<string, object?>(Telemetry.Attributes.SelectionLog, s.Value))),
        "{session}", "Selection sessions held in memory (the rest are evicted or only in the batch log).");

    internal static void Track(SessionStore store, string log) => Stores[store] = log;

    internal static void Untrack(SessionStore store) => Stores.TryRemove(store, out _);

    internal static readonly Histogram<long> Staleness = Meter.CreateHistogram<long>(Telemetry.Metrics.SelectionStaleness, "{step}", "Batches the learner trains between its scores and the batch they select.");
}
