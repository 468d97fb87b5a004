using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models;

/// <summary>A list of pairs held as tensors (uint8 images, int64 tokens, labels) for fast batch gathers.</summary>
public sealed class PairTensors : IDisposable
{
    public PairTensors(IReadOnlyList<PairExample> pairs, ImageSet images)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        ArgumentNullException.ThrowIfNull(images);
        Count = pairs.Count;
        var pixels = new byte[pairs.Count * ImageSet.PixelsPerImage];
        var labels = new long[pairs.Count];
        var tokens = new int[pairs.Count][];
        for (var i = 0; i < pairs.Count; i++)
        {
            images.Image(pairs[i].ImageIndex).CopyTo(pixels.AsSpan(i * ImageSet.PixelsPerImage));
            labels[i] = pairs[i].Label;
            tokens[i] = pairs[i].Tokens;
        }

        Images = TensorConvert.Images(pixels, pairs.Count).DetachFromDisposeScope();
        Tokens = TensorConvert.Tokens(tokens, Captions.MaxTokens).DetachFromDisposeScope();
        Labels = TensorConvert.Int64(labels).DetachFromDisposeScope();
    }

    public int Count { get; }

    public Tensor Images { get; }

    public Tensor Tokens { get; }

    public Tensor Labels { get; }

    /// <summary>Rows at <paramref name="indices"/> (tensors owned by the caller's dispose scope).</summary>
    public (Tensor Images, Tensor Tokens, Tensor Labels) Gather(Tensor indices) =>
        (Images.index_select(0, indices), Tokens.index_select(0, indices), Labels.index_select(0, indices));

    public void Dispose()
    {
        Images.Dispose();
        Tokens.Dispose();
        Labels.Dispose();
    }
}
