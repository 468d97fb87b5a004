namespace JestMesh.Protos;

/// <summary>
/// The trace and metric vocabulary of JestMesh, part of its public contract: the names of the
/// sources, of the spans of one super-batch's journey, of the attributes that follow it, and of the
/// metrics. Producers and readers (the demo's OTLP receiver, dashboards) use these constants only.
/// The messaging library keeps its transport-level names (OpenTelemetry's messaging.* conventions
/// and jestmesh.messaging.*) to itself.
/// </summary>
public static class Telemetry
{
    /// <summary>ActivitySource and Meter name of each component.</summary>
    public static class Sources
    {
        public const string Ingest = "JestMesh.Ingest";
        public const string Scoring = "JestMesh.Scoring";
        public const string Selection = "JestMesh.Selection";
        public const string Trainer = "JestMesh.Trainer";

        /// <summary>Every JestMesh component source (the messaging library's is its own).</summary>
        public static IReadOnlyList<string> All { get; } = [Ingest, Scoring, Selection, Trainer];
    }

    /// <summary>Spans, in the order one super-batch meets them.</summary>
    public static class Spans
    {
        public const string IngestPublish = "ingest.publish";
        public const string ScoringProcess = "scoring.process";
        public const string ScoringEmbed = "scoring.embed";
        public const string ScoringPublish = "scoring.publish";
        public const string SelectionSelect = "selection.select";
        public const string CurateSend = "curate.send";
        public const string TrainerStep = "trainer.step";

        /// <summary>The journey of one super-batch, producer to learner.</summary>
        public static IReadOnlyList<string> Journey { get; } = [IngestPublish, ScoringProcess, ScoringPublish, SelectionSelect, CurateSend, TrainerStep];
    }

    /// <summary>Span attributes: one spelling each, so one key follows a super-batch through every span.</summary>
    public static class Attributes
    {
        public const string Job = "jestmesh.job";
        public const string SuperBatchId = "jestmesh.super_batch.id";
        public const string SuperBatchSequence = "jestmesh.super_batch.sequence";
        public const string SuperBatchSize = "jestmesh.super_batch.size";
        public const string Session = "jestmesh.session";
        public const string Sequence = "jestmesh.sequence";
        public const string Policy = "jestmesh.policy";
        public const string Loss = "jestmesh.loss";
        public const string CacheHits = "jestmesh.scoring.cache_hits";
        public const string CacheMisses = "jestmesh.scoring.misses";
        /// <summary>The batch log (stream name) a Selection replica serves from: tells replicas apart in one process.</summary>
        public const string SelectionLog = "jestmesh.selection.log";
    }

    /// <summary>Metric names.</summary>
    public static class Metrics
    {
        public const string IngestSuperBatches = "jestmesh.ingest.superbatches";
        public const string IngestBackpressureWaits = "jestmesh.ingest.backpressure_waits";
        public const string ScoringExamples = "jestmesh.scoring.examples";
        public const string ScoringCacheHits = "jestmesh.scoring.cache_hits";
        public const string ScoringDuration = "jestmesh.scoring.superbatch.duration";
        public const string SelectionLatency = "jestmesh.selection.latency";
        public const string SelectionScoreSelected = "jestmesh.selection.score_selected";
        public const string SelectionRecord = "jestmesh.selection.record";
        public const string SelectionBatches = "jestmesh.selection.batches";
        public const string SelectionReplayed = "jestmesh.selection.replayed";
        public const string SelectionStaleness = "jestmesh.selection.learner_staleness";
        public const string SelectionSessionsLive = "jestmesh.selection.sessions.live";
        public const string SelectionSessionsEvicted = "jestmesh.selection.sessions.evicted";
        public const string SelectionSessionsRebuilt = "jestmesh.selection.sessions.rebuilt";
        public const string TrainerDataStall = "jestmesh.trainer.data_stall";
        public const string TrainerStep = "jestmesh.trainer.step";
        public const string TrainerReconnects = "jestmesh.trainer.reconnects";
    }
}
