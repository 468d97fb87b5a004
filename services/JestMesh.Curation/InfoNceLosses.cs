namespace JestMesh.Curation;

/// <summary>
/// One model's InfoNCE loss of every example with its whole super-batch as negatives, per direction: what the softmax
/// source's first chunk needs from that model (<see cref="SoftmaxContrastiveSource"/>).
/// </summary>
/// <remarks>
/// ImageToText[c] = lse_{k} u_ck − u_cc and TextToImage[c] = lse_{k} u_kc − u_cc over all k in the super-batch (c included),
/// u = α⟨img, txt⟩. For the frozen reference model they depend on the super-batch only, so Scoring can compute them once per
/// super-batch (<see cref="Compute"/>) and every job's softmax selection can take them instead of recomputing them: the
/// source computes a model's first pass with exactly this code, so supplied and computed values are the same doubles on
/// the same hardware and runtime (the kernel's fused multiply-adds and the runtime's log may differ in the last bits
/// between machines).
/// </remarks>
public sealed class InfoNceLosses
{
    /// <summary>Wraps the arrays without copying.</summary>
    /// <exception cref="ArgumentException">Empty, of different lengths, or with a NaN or infinite value.</exception>
    public InfoNceLosses(double[] imageToText, double[] textToImage)
    {
        ArgumentNullException.ThrowIfNull(imageToText);
        ArgumentNullException.ThrowIfNull(textToImage);
        if (imageToText.Length == 0)
        {
            throw new ArgumentException("imageToText is empty (N = 0).", nameof(imageToText));
        }

        if (textToImage.Length != imageToText.Length)
        {
            throw new ArgumentException($"textToImage has {textToImage.Length} values but imageToText has {imageToText.Length}.", nameof(textToImage));
        }

        for (int i = 0; i < imageToText.Length; i++)
        {
            if (!double.IsFinite(imageToText[i]) || !double.IsFinite(textToImage[i]))
            {
                throw new ArgumentException($"example {i} has a NaN or infinite loss ({imageToText[i]}, {textToImage[i]}).", double.IsFinite(imageToText[i]) ? nameof(textToImage) : nameof(imageToText));
            }
        }

        ImageToTextArray = imageToText;
        TextToImageArray = textToImage;
    }

    public int Count => ImageToTextArray.Length;

    public ReadOnlyMemory<double> ImageToText => ImageToTextArray;

    public ReadOnlyMemory<double> TextToImage => TextToImageArray;

    internal double[] ImageToTextArray { get; }

    internal double[] TextToImageArray { get; }

    /// <summary>The model's losses over its whole super-batch: the softmax source's own first pass for this one model (O(N²·d), no N×N matrix).</summary>
    public static InfoNceLosses Compute(ContrastiveEmbeddings model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return SoftmaxContrastiveSource.FirstPass(model);
    }
}
