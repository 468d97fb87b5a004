using JestMesh.Data;

namespace JestMesh.Models;

/// <summary>
/// Multiply-accumulates of one forward pass of the SigLIP dual encoder for one example, counted layer by
/// layer from <see cref="ModelConfig"/> (convolutions, linear layers, the embedding bag's mean; activations,
/// pooling and normalisation are left out: they are a few per cent of a layer's MACs and the same at
/// every resolution). What the compute accounting charges a scoring pass at a given image side.
/// </summary>
public static class ModelCost
{
    /// <summary>MACs of the image tower on one S×S image.</summary>
    public static long ImageForwardMacs(ModelConfig config, int side)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (side < 4)
        {
            throw new ArgumentOutOfRangeException(nameof(side), side, "an image side below 4 leaves no feature map after two 2×2 pools.");
        }

        long s1 = side;             // conv1, padding 1: S×S outputs
        long s2 = side / 2;         // after the first max-pool
        var conv1 = s1 * s1 * config.Conv1Channels * 9L;
        var conv2 = s2 * s2 * config.Conv2Channels * config.Conv1Channels * 9L;
        var hidden = (long)config.Conv2Channels * ImageTower.FeatureSide * ImageTower.FeatureSide * config.ImageHidden;
        var output = (long)config.ImageHidden * config.Dim;
        return conv1 + conv2 + hidden + output;
    }

    /// <summary>MACs of the text tower on one caption (the bag's mean over at most MaxTokens words, then the projection).</summary>
    public static long TextForwardMacs(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return ((long)config.MaxTokens * config.WordDim) + ((long)config.WordDim * config.Dim);
    }

    /// <summary>MACs of a forward pass of both towers on one example whose image is S×S.</summary>
    public static long ForwardMacs(ModelConfig config, int side = ImageSet.Side) => ImageForwardMacs(config, side) + TextForwardMacs(config);

    /// <summary>Forward cost at side S relative to the full-resolution forward pass (1 at 28).</summary>
    public static double RelativeForward(ModelConfig config, int side) => (double)ForwardMacs(config, side) / ForwardMacs(config, ImageSet.Side);
}
