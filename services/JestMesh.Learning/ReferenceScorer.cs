using JestMesh.Curation;

namespace JestMesh.Learning;

/// <summary>The reference's view of one super-batch: embeddings in candidate order, and how many came from the cache.</summary>
public sealed record ReferenceScores(float[] Image, float[] Text, int Count, int Dim, float Alpha, float Beta, int CacheHits)
{
    /// <summary>The view the curation step takes.</summary>
    public ContrastiveEmbeddings ToEmbeddings() => new(Image, Text, Count, Dim, Alpha, Beta);
}

/// <summary>The frozen reference produced NaN or infinite embeddings: the same input will do it again.</summary>
public sealed class NonFiniteReferenceException(string message) : Exception(message);

/// <summary>
/// An example cannot be given to the reference (a bundle cannot decode its stored image): the same input
/// will fail again. The message names the example's id, its source (SHARD/KEY when it has one) and the reason.
/// </summary>
public sealed class ReferenceInputException(long id, string source, string reason) : Exception($"id {id} ({source}): {reason}")
{
    public long Id { get; } = id;

    public string Reason { get; } = reason;
}

/// <summary>
/// The reference model's embeddings of candidates (JEST §A.5): frozen, so each example's rows are
/// computed once and cached by example id; the examples missing from the cache are embedded
/// together, in passes of the embedder's batch size. The Scoring service and the in-process loop
/// both score through this class, so both produce the same bits.
/// </summary>
public sealed class ReferenceScorer : IDisposable
{
    private readonly bool _ownsEmbedder;

    public ReferenceScorer(ReferenceEmbedder embedder, EmbeddingCache cache)
        : this(embedder, cache, ownsEmbedder: false)
    {
    }

    private ReferenceScorer(ReferenceEmbedder embedder, EmbeddingCache cache, bool ownsEmbedder)
    {
        ArgumentNullException.ThrowIfNull(embedder);
        ArgumentNullException.ThrowIfNull(cache);
        if (cache.Dim != embedder.Dim)
        {
            throw new ArgumentException($"the cache holds rows of {cache.Dim}, the reference embeds to {embedder.Dim}.", nameof(cache));
        }
        Embedder = embedder;
        Cache = cache;
        _ownsEmbedder = ownsEmbedder;
    }

    public ReferenceEmbedder Embedder { get; }

    public EmbeddingCache Cache { get; }

    public int Dim => Embedder.Dim;

    /// <summary>Loads a reference checkpoint (SHA-256 checked) with a cache of <paramref name="cacheCapacity"/> examples.</summary>
    public static async Task<ReferenceScorer> LoadAsync(string checkpoint, string device, int batchSize, int cacheCapacity)
    {
        var embedder = await ReferenceEmbedder.LoadAsync(checkpoint, device, batchSize);
        return new ReferenceScorer(embedder, new EmbeddingCache(cacheCapacity, embedder.Dim), ownsEmbedder: true);
    }

    /// <summary>
    /// Reference embeddings of the examples <paramref name="ids"/>: cached rows where present, the
    /// model for the rest. <paramref name="inputsOf"/> gives the inputs of the missing candidates
    /// (indices into <paramref name="ids"/>, ascending), so callers convert only what is embedded.
    /// </summary>
    /// <exception cref="NonFiniteReferenceException">The model produced NaN or infinity.</exception>
    /// <exception cref="ReferenceInputException">A missing example cannot be given to the reference (its image does not decode).</exception>
    public async Task<ReferenceScores> ScoreAsync(IReadOnlyList<long> ids, Func<int[], ExampleBatch> inputsOf)
    {
        ArgumentNullException.ThrowIfNull(ids);
        ArgumentNullException.ThrowIfNull(inputsOf);
        var n = ids.Count;
        var d = Embedder.Dim;
        var image = new float[n * d];
        var text = new float[n * d];
        var misses = new List<int>();
        for (var i = 0; i < n; i++)
        {
            if (!Cache.TryGet(ids[i], image.AsSpan(i * d, d), text.AsSpan(i * d, d)))
            {
                misses.Add(i);
            }
        }
        if (misses.Count > 0)
        {
            var missed = misses.ToArray();
            var inputs = inputsOf(missed);
            if (inputs.Count != missed.Length)
            {
                throw new InvalidOperationException($"inputsOf returned {inputs.Count} examples for {missed.Length} misses.");
            }
            var embeddings = await Embedder.EmbedAsync(inputs);
            if (embeddings.Dim != d || embeddings.Count != missed.Length)
            {
                throw new InvalidOperationException($"reference returned {embeddings.Count}x{embeddings.Dim} embeddings for {missed.Length}x{d}.");
            }
            if (!Finite.All(embeddings.Image) || !Finite.All(embeddings.Text))
            {
                throw new NonFiniteReferenceException("the reference model produced NaN or infinite embeddings.");
            }
            for (var k = 0; k < missed.Length; k++)
            {
                var i = missed[k];
                var rowImage = embeddings.Image.AsSpan(k * d, d);
                var rowText = embeddings.Text.AsSpan(k * d, d);
                rowImage.CopyTo(image.AsSpan(i * d, d));
                rowText.CopyTo(text.AsSpan(i * d, d));
                Cache.Add(ids[i], rowImage, rowText);
            }
        }
        return new ReferenceScores(image, text, n, d, Embedder.Alpha, Embedder.Beta, n - misses.Count);
    }

    public void Dispose()
    {
        if (_ownsEmbedder)
        {
            Embedder.Dispose();
        }
    }
}
