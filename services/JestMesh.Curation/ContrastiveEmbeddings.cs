namespace JestMesh.Curation;

/// <summary>One model's view of a super-batch for the sigmoid (SigLIP) loss: N×d image and text embeddings, row-major, L2-normalised, with the model's own temperature α and bias β.</summary>
public sealed class ContrastiveEmbeddings
{
    /// <summary>Wraps the arrays without copying; validates shape and finiteness once here so the sampler's hot loops need not.</summary>
    /// <exception cref="ArgumentException">Empty input, a length that is not count×dim, or a NaN/infinite value or parameter.</exception>
    public ContrastiveEmbeddings(float[] image, float[] text, int count, int dim, float alpha, float beta)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentNullException.ThrowIfNull(text);
        if (count <= 0)
        {
            throw new ArgumentException($"count must be positive, got {count} (empty super-batch).", nameof(count));
        }

        if (dim <= 0)
        {
            throw new ArgumentException($"dim must be positive, got {dim}.", nameof(dim));
        }

        Validation.RequireLength(image, (long)count * dim, nameof(image), $"{count}×{dim}");
        Validation.RequireLength(text, (long)count * dim, nameof(text), $"{count}×{dim}");
        Validation.RequireFinite(image, dim, nameof(image));
        Validation.RequireFinite(text, dim, nameof(text));
        Validation.RequireFinite(alpha, nameof(alpha));
        Validation.RequireFinite(beta, nameof(beta));
        ImageArray = image;
        TextArray = text;
        Count = count;
        Dim = dim;
        Alpha = alpha;
        Beta = beta;
    }

    public ReadOnlyMemory<float> Image => ImageArray;

    public ReadOnlyMemory<float> Text => TextArray;

    public int Count { get; }

    public int Dim { get; }

    public float Alpha { get; }

    public float Beta { get; }

    internal float[] ImageArray { get; }

    internal float[] TextArray { get; }
}
