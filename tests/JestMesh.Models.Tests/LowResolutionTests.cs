using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models.Tests;

/// <summary>Cheap scoring: the same model embeds 28×28 and 14×14 (or 7×7) images; the cost model counts what each costs.</summary>
[Collection(TorchCollection.Name)]
[Trait("Tier", "Unit")]
public sealed class LowResolutionTests(RealPairs pairs)
{
    private readonly PairDataset _data = pairs.Data;

    [Fact]
    public void Downsample_averages_blocks_and_rounds_to_bytes()
    {
        var pixels = new byte[ImageSet.PixelsPerImage];
        // Top-left 2×2 block 0, 1, 2, 4 → mean 1.75 → 2; every other block constant 200.
        Array.Fill(pixels, (byte)200);
        pixels[0] = 0;
        pixels[1] = 1;
        pixels[28] = 2;
        pixels[29] = 4;
        using var scope = NewDisposeScope();
        var small = TensorConvert.Downsample(TensorConvert.Images(pixels, 1), 14);
        Assert.Equal([1L, 1, 14, 14], small.shape);
        Assert.Equal(ScalarType.Byte, small.dtype);
        Assert.Equal(2, small[0, 0, 0, 0].item<byte>());
        Assert.Equal(200, small[0, 0, 13, 13].item<byte>());
        Assert.Equal([1L, 1, 7, 7], TensorConvert.Downsample(TensorConvert.Images(pixels, 1), 7).shape);
        Assert.Throws<ArgumentOutOfRangeException>(() => TensorConvert.Downsample(TensorConvert.Images(pixels, 1), 10));
    }

    [Theory]
    [InlineData(28)]
    [InlineData(14)]
    [InlineData(7)]
    public void The_model_embeds_every_scoring_resolution_to_unit_rows_of_width_d(int resolution)
    {
        manual_seed(3);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        var examples = _data.Curated.Take(21).ToArray();
        var pixels = examples.SelectMany(p => _data.Train.Image(p.ImageIndex).ToArray()).ToArray();
        var batch = model.Embed(pixels, examples.Length, examples.Select(p => p.Tokens).ToArray(), batchSize: 8, resolution: resolution);
        Assert.Equal(21, batch.Count);
        Assert.Equal(64, batch.Dim);
        for (var i = 0; i < 21; i++)
        {
            Assert.Equal(1.0, Math.Sqrt(batch.Image.AsSpan(i * 64, 64).ToArray().Sum(v => (double)v * v)), 4);
        }
    }

    [Fact]
    public void Low_resolution_changes_the_image_embedding_but_not_the_text_one()
    {
        manual_seed(4);
        using var model = SiglipModel.Create(new ModelConfig(), CPU);
        var examples = _data.Curated.Take(5).ToArray();
        var pixels = examples.SelectMany(p => _data.Train.Image(p.ImageIndex).ToArray()).ToArray();
        var tokens = examples.Select(p => p.Tokens).ToArray();
        var full = model.Embed(pixels, 5, tokens);
        var cheap = model.Embed(pixels, 5, tokens, resolution: 14);
        Assert.Equal(full.Text, cheap.Text);
        Assert.NotEqual(full.Image, cheap.Image);
    }

    [Fact]
    public void The_full_resolution_path_is_the_one_it_always_was()
    {
        // The 28 px map is 7×7 and goes straight to the hidden layer: the same as the tower before cheap scoring.
        manual_seed(5);
        using var tower = new ImageTower(new ModelConfig());
        using var scope = NewDisposeScope();
        var images = randint(0, 256, [3, 1, 28, 28], ScalarType.Byte);
        Assert.Equal([3L, 64], tower.forward(images).shape);
        Assert.Equal([3L, 64], tower.forward(TensorConvert.Downsample(images, 14)).shape);
    }

    [Fact]
    public void Forward_cost_is_counted_layer_by_layer()
    {
        var c = new ModelConfig();
        // conv1 28·28·16·9 + conv2 14·14·32·16·9 + hidden 32·7·7·128 + out 128·64
        Assert.Equal(112_896L + 903_168 + 200_704 + 8_192, ModelCost.ImageForwardMacs(c, 28));
        // conv1 14·14·16·9 + conv2 7·7·32·16·9 + the same head
        Assert.Equal(28_224L + 225_792 + 200_704 + 8_192, ModelCost.ImageForwardMacs(c, 14));
        Assert.Equal(((long)c.MaxTokens * 128) + (128 * 64), ModelCost.TextForwardMacs(c));
        Assert.Equal(1.0, ModelCost.RelativeForward(c, 28), 12);
        var rel14 = ModelCost.RelativeForward(c, 14);
        Assert.Equal((462_912.0 + ModelCost.TextForwardMacs(c)) / (1_224_960.0 + ModelCost.TextForwardMacs(c)), rel14, 12);
        Assert.InRange(rel14, 0.35, 0.40);
    }
}
