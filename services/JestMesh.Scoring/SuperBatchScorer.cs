using System.Diagnostics;
using System.Diagnostics.Metrics;
using Google.Protobuf;
using JestMesh.Curation;
using JestMesh.Learning;
using JestMesh.Messaging;
using JestMesh.Protos;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;

namespace JestMesh.Scoring;

/// <summary>
/// The Scoring host's adapter of the learning core's <see cref="ReferenceScorer"/>: parses and checks a
/// super-batch, scores it (cache first, the model for misses) and packs the rows in a ScoredSuperBatch.
/// </summary>
public sealed partial class SuperBatchScorer
{
    public const string TelemetryName = Telemetry.Sources.Scoring;
    public static readonly ActivitySource Source = new(TelemetryName);
    private static readonly Meter Meter = new(TelemetryName);
    private static readonly Counter<long> Examples = Meter.CreateCounter<long>(Telemetry.Metrics.ScoringExamples, "{example}", "Examples scored.");
    private static readonly Counter<long> CacheHits = Meter.CreateCounter<long>(Telemetry.Metrics.ScoringCacheHits, "{example}", "Examples served from the embedding cache.");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>(Telemetry.Metrics.ScoringDuration, "ms", "Scoring time per super-batch (without the publish).");

    private readonly ReferenceScorer _reference;
    private readonly ScoringOptions _options;
    private readonly ILogger<SuperBatchScorer> _logger;

    public SuperBatchScorer(ReferenceScorer reference, IOptions<ScoringOptions> options, ILogger<SuperBatchScorer> logger)
    {
        ArgumentNullException.ThrowIfNull(reference);
        ArgumentNullException.ThrowIfNull(options);
        _reference = reference;
        _options = options.Value;
        _logger = logger;
    }

    public EmbeddingCache Cache => _reference.Cache;

    /// <summary>Parses and checks a super-batch; anything wrong is a <see cref="PoisonMessageException"/> with the reason.</summary>
    public SuperBatch Parse(string messageId, ReadOnlySpan<byte> body)
    {
        SuperBatch batch;
        try
        {
            batch = SuperBatch.Parser.ParseFrom(body);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw new PoisonMessageException($"message {messageId} is not a valid SuperBatch protobuf ({body.Length} bytes): {ex.Message}", ex);
        }
        try
        {
            batch.Validate(_reference.Embedder.VocabularySize, _reference.Embedder.MaxTokens);
        }
        catch (InvalidDataException ex)
        {
            throw new PoisonMessageException(ex.Message, ex);
        }
        if (_options.ExpectedDataFingerprint.Length > 0 && batch.DataFingerprint != _options.ExpectedDataFingerprint)
        {
            throw new PoisonMessageException(
                $"super-batch {batch.Id} has data fingerprint '{batch.DataFingerprint}', Scoring:ExpectedDataFingerprint is '{_options.ExpectedDataFingerprint}'.");
        }
        return batch;
    }

    /// <summary>Reference embeddings of every example (cache first, the model for misses, batched): the learning core's <see cref="ReferenceScorer"/>.</summary>
    public async Task<ScoredSuperBatch> ScoreAsync(SuperBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var started = Stopwatch.GetTimestamp();
        var n = batch.Examples.Count;
        var ids = new long[n];
        for (var i = 0; i < n; i++)
        {
            ids[i] = batch.Examples[i].Id;
        }
        ReferenceScores scores;
        using var activity = Source.StartActivity(Telemetry.Spans.ScoringEmbed);
        try
        {
            scores = await _reference.ScoreAsync(ids, misses =>
            {
                // Only the examples the cache lacks are converted and embedded.
                // A bundle takes the examples' stored images and caption text; the built-in model their pixels and ids.
                var (missIds, pixels, tokens) = ExampleArrays.Of(batch.Examples, $"super-batch {batch.Id}", misses);
                LogEmbedded(_logger, batch.Id, misses.Length, n);
                return new ExampleBatch(missIds, pixels, tokens, ExampleArrays.Stored(batch.Examples, misses));
            });
        }
        catch (NonFiniteReferenceException ex)
        {
            // Same input, same frozen model, same NaN: retrying cannot help.
            throw new PoisonMessageException($"super-batch {batch.Id}: {ex.Message}", ex);
        }
        catch (ReferenceInputException ex)
        {
            // An image the reference cannot decode stays undecodable: the whole super-batch is dead-lettered with the
            // reason (its examples are counted there), as any super-batch that cannot be scored.
            var index = ids.AsSpan().IndexOf(ex.Id);
            throw new PoisonMessageException($"super-batch {batch.Id} examples[{index}] {ex.Message}", ex);
        }
        activity?.SetTag(Telemetry.Attributes.CacheMisses, n - scores.CacheHits);
        Examples.Add(n);
        CacheHits.Add(scores.CacheHits);
        var scored = new ScoredSuperBatch
        {
            Id = batch.Id,
            Job = batch.Job,
            Sequence = batch.Sequence,
            ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(scores.Image, n, scores.Dim),
            ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(scores.Text, n, scores.Dim),
            ReferenceAlpha = scores.Alpha,
            ReferenceBeta = scores.Beta,
            ReferenceCheckpointSha256 = _reference.Embedder.Metadata.Sha256,
            DataFingerprint = batch.DataFingerprint,
            CreatedUnixMs = batch.CreatedUnixMs,
            ScoredUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            CacheHits = scores.CacheHits,
        };
        if (_options.ReferenceInfoNce)
        {
            // The softmax source's reference half of its first chunk: the same Curation code Selection would run.
            scored.ReferenceInfoNce = ReferenceInfoNce.From(InfoNceLosses.Compute(scores.ToEmbeddings()));
        }
        // The examples are immutable messages: the scored batch shares them, no copy of the pixels.
        scored.Examples.Add(batch.Examples);
        Duration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return scored;
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Super-batch {SuperBatchId}: embedded {Misses} of {Count} examples (rest cached)")]
    private static partial void LogEmbedded(ILogger logger, string superBatchId, int misses, int count);
}
