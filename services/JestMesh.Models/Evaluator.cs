using System.Runtime.InteropServices;
using JestMesh.Data;
using static TorchSharp.torch;

namespace JestMesh.Models;

/// <summary>Test-set scores of one model: zero-shot accuracy with class prompts and image→text recall@1.</summary>
public sealed record EvalResult(double ZeroShotAccuracy, double RecallAt1, double RecallAt1Exact);

/// <summary>Evaluates a SigLIP model on the clean test pairs; the test tensors are built once and reused.</summary>
/// <remarks>
/// Zero-shot: each class's text embedding is the normalised mean of its prompts ("a photo of a X" per synonym);
/// an image is correct when its nearest class is its label. R@1: each image retrieves its top caption among the
/// distinct test captions. Captions pick a template and synonyms at random, so many different texts describe the
/// same image equally well (like COCO's five captions per image): R@1 counts a hit when the retrieved caption
/// describes the image correctly (its class, and its brightness and size buckets where it mentions them).
/// R@1 exact counts a hit only for the image's own caption text, which the random template choice caps near 1%.
/// </remarks>
public sealed class Evaluator : IDisposable
{
    private readonly Tensor _images;
    private readonly Tensor _labels;
    private readonly Tensor _promptTokens;
    private readonly int _promptsPerClass;
    private readonly Tensor _captionTokens;
    private readonly Tensor _captionOf;
    private readonly (int Label, int Brightness, int Size)[] _captionSays;
    private readonly (int Label, int Brightness, int Size)[] _imageIs;

    public Evaluator(PairDataset data, int? limit = null)
    {
        ArgumentNullException.ThrowIfNull(data);
        var pairs = limit is { } n ? data.TestPairs.Take(n).ToArray() : [.. data.TestPairs];
        Count = pairs.Length;
        using var tensors = new PairTensors(pairs, data.Test);
        _images = tensors.Images.clone().DetachFromDisposeScope();
        _labels = tensors.Labels.clone().DetachFromDisposeScope();

        var prompts = Enumerable.Range(0, FashionMnist.ClassCount).Select(Captions.ClassPrompts).ToArray();
        _promptsPerClass = prompts[0].Count;
        _promptTokens = TensorConvert.Tokens(prompts.SelectMany(p => p).ToArray(), Captions.MaxTokens).DetachFromDisposeScope();

        var distinct = new Dictionary<string, int>(StringComparer.Ordinal);
        var captionRows = new List<int[]>();
        var captionOf = new long[pairs.Length];
        for (var i = 0; i < pairs.Length; i++)
        {
            var key = string.Join(',', pairs[i].Tokens);
            if (!distinct.TryGetValue(key, out var id))
            {
                id = captionRows.Count;
                distinct[key] = id;
                captionRows.Add(pairs[i].Tokens);
            }

            captionOf[i] = id;
        }

        DistinctCaptions = captionRows.Count;
        _captionSays = captionRows.Select(r => Captions.Attributes(r)).ToArray();
        _imageIs = pairs.Select(p => (p.Label, Captions.BrightnessBucket(data.Test.Image(p.ImageIndex)), Captions.SizeBucket(data.Test.Image(p.ImageIndex)))).ToArray();
        _captionTokens = TensorConvert.Tokens(captionRows, Captions.MaxTokens).DetachFromDisposeScope();
        _captionOf = TensorConvert.Int64(captionOf).DetachFromDisposeScope();
    }

    public int Count { get; }

    public int DistinctCaptions { get; }

    public EvalResult Evaluate(SiglipModel model, int batchSize = 1000)
    {
        ArgumentNullException.ThrowIfNull(model);
        using var _ = no_grad();
        using var scope = NewDisposeScope();
        var wasTraining = model.training;
        model.eval();
        try
        {
            var prompts = model.EmbedText(_promptTokens).reshape(FashionMnist.ClassCount, _promptsPerClass, -1).mean([1]);
            var classes = nn.functional.normalize(prompts, p: 2, dim: 1);
            var captions = model.EmbedText(_captionTokens);
            long correctClass = 0, correctCaption = 0, correctText = 0;
            for (long start = 0; start < Count; start += batchSize)
            {
                using var inner = NewDisposeScope();
                var len = Math.Min(batchSize, Count - start);
                var img = model.EncodeImages(_images.narrow(0, start, len));
                var predictedClass = img.matmul(classes.t()).argmax(1);
                correctClass += predictedClass.eq(_labels.narrow(0, start, len)).sum().item<long>();
                var predictedCaption = img.matmul(captions.t()).argmax(1);
                correctText += predictedCaption.eq(_captionOf.narrow(0, start, len)).sum().item<long>();
                var predicted = new long[len];
                MemoryMarshal.Cast<byte, long>(predictedCaption.contiguous().bytes).CopyTo(predicted);
                for (var i = 0; i < len; i++)
                {
                    var says = _captionSays[predicted[i]];
                    var image = _imageIs[start + i];
                    if (says.Label == image.Label && (says.Brightness < 0 || says.Brightness == image.Brightness) && (says.Size < 0 || says.Size == image.Size))
                    {
                        correctCaption++;
                    }
                }
            }

            return new EvalResult((double)correctClass / Count, (double)correctCaption / Count, (double)correctText / Count);
        }
        finally
        {
            model.train(wasTraining);
        }
    }

    public void Dispose()
    {
        _images.Dispose();
        _labels.Dispose();
        _promptTokens.Dispose();
        _captionTokens.Dispose();
        _captionOf.Dispose();
    }
}
