using System.Diagnostics;
using System.Diagnostics.Metrics;
using Google.Protobuf;
using JestMesh.Data;
using JestMesh.Messaging;
using JestMesh.Protos.V1;
using Microsoft.Extensions.Options;

namespace JestMesh.Scoring;

/// <summary>
/// Reference embeddings for a super-batch: from the cache where present, from the model (batched,
/// no grad, on its own thread) for the rest, checked for NaN, packed as tensors in a ScoredSuperBatch.
/// </summary>
public sealed partial class SuperBatchScorer
{
    public const string TelemetryName = "JestMesh.Scoring";
    public static readonly ActivitySource Source = new(TelemetryName);
    private static readonly Meter Meter = new(TelemetryName);
    private static readonly Counter<long> Examples = Meter.CreateCounter<long>("jestmesh.scoring.examples", "{example}", "Examples scored.");
    private static readonly Counter<long> CacheHits = Meter.CreateCounter<long>("jestmesh.scoring.cache_hits", "{example}", "Examples served from the embedding cache.");
    private static readonly Histogram<double> Duration = Meter.CreateHistogram<double>("jestmesh.scoring.superbatch.duration", "ms", "Scoring time per super-batch (without the publish).");

    private readonly ReferenceEmbedder _embedder;
    private readonly EmbeddingCache _cache;
    private readonly ScoringOptions _options;
    private readonly ILogger<SuperBatchScorer> _logger;

    public SuperBatchScorer(ReferenceEmbedder embedder, EmbeddingCache cache, IOptions<ScoringOptions> options, ILogger<SuperBatchScorer> logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        _embedder = embedder;
        _cache = cache;
        _options = options.Value;
        _logger = logger;
    }

    public EmbeddingCache Cache => _cache;

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
            batch.Validate(_embedder.VocabularySize, _embedder.MaxTokens);
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

    /// <summary>Reference embeddings of every example (cache first, the model for misses, batched).</summary>
    public async Task<ScoredSuperBatch> ScoreAsync(SuperBatch batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        var started = Stopwatch.GetTimestamp();
        var n = batch.Examples.Count;
        var d = _embedder.Dim;
        var image = new float[n * d];
        var text = new float[n * d];
        var misses = new List<int>();
        for (var i = 0; i < n; i++)
        {
            if (!_cache.TryGet(batch.Examples[i].Id, image.AsSpan(i * d, d), text.AsSpan(i * d, d)))
            {
                misses.Add(i);
            }
        }
        if (misses.Count > 0)
        {
            await EmbedMissesAsync(batch, misses, image, text, d);
        }
        var hits = n - misses.Count;
        Examples.Add(n);
        CacheHits.Add(hits);
        var scored = new ScoredSuperBatch
        {
            Id = batch.Id,
            Job = batch.Job,
            Sequence = batch.Sequence,
            ReferenceImageEmbeddings = Protos.V1.Tensor.FromFloat32(image, n, d),
            ReferenceTextEmbeddings = Protos.V1.Tensor.FromFloat32(text, n, d),
            ReferenceAlpha = _embedder.Alpha,
            ReferenceBeta = _embedder.Beta,
            ReferenceCheckpointSha256 = _embedder.Metadata.Sha256,
            DataFingerprint = batch.DataFingerprint,
            CreatedUnixMs = batch.CreatedUnixMs,
            ScoredUnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            CacheHits = hits,
        };
        // The examples are immutable messages: the scored batch shares them, no copy of the pixels.
        scored.Examples.Add(batch.Examples);
        Duration.Record(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return scored;
    }

    private async Task EmbedMissesAsync(SuperBatch batch, List<int> misses, float[] image, float[] text, int d)
    {
        using var activity = Source.StartActivity("scoring.embed");
        activity?.SetTag("jestmesh.scoring.misses", misses.Count);
        var pixels = new byte[misses.Count * ImageSet.PixelsPerImage];
        var tokens = new int[misses.Count][];
        for (var k = 0; k < misses.Count; k++)
        {
            var example = batch.Examples[misses[k]];
            example.Image.Span.CopyTo(pixels.AsSpan(k * ImageSet.PixelsPerImage));
            tokens[k] = [.. example.CaptionTokens];
        }
        var embeddings = await _embedder.EmbedAsync(pixels, misses.Count, tokens);
        if (embeddings.Dim != d || embeddings.Count != misses.Count)
        {
            throw new InvalidOperationException($"reference returned {embeddings.Count}x{embeddings.Dim} embeddings for {misses.Count}x{d}.");
        }
        if (!Protos.V1.Tensor.AllFinite(embeddings.Image) || !Protos.V1.Tensor.AllFinite(embeddings.Text))
        {
            // Same input, same frozen model, same NaN: retrying cannot help.
            throw new PoisonMessageException($"super-batch {batch.Id}: the reference model produced NaN or infinite embeddings.");
        }
        for (var k = 0; k < misses.Count; k++)
        {
            var i = misses[k];
            var rowImage = embeddings.Image.AsSpan(k * d, d);
            var rowText = embeddings.Text.AsSpan(k * d, d);
            rowImage.CopyTo(image.AsSpan(i * d, d));
            rowText.CopyTo(text.AsSpan(i * d, d));
            _cache.Add(batch.Examples[i].Id, rowImage, rowText);
        }
        LogEmbedded(_logger, batch.Id, misses.Count, batch.Examples.Count);
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Super-batch {SuperBatchId}: embedded {Misses} of {Count} examples (rest cached)")]
    private static partial void LogEmbedded(ILogger logger, string superBatchId, int misses, int count);
}
